import { stringifyJsonBigInt } from './bigint-json.ts';
import type { JsonValue } from './bigint-json.ts';
import { isJsonObject } from './machine-rpc-client.ts';
import { MachineRpcError } from './machine-rpc-error.ts';

/** Emulator releases whose `cartesi-jsonrpc-machine` this driver speaks (cartesi-gio.md §1.9). */
export const EMULATOR_VERSIONS = ['0.19', '0.20', '0.21'] as const;
export type EmulatorVersion = (typeof EMULATOR_VERSIONS)[number];

/**
 * The JSON-RPC surface the driver uses, per emulator version (cartesi-gio.md §1.9, from the dispatch table
 * in `jsonrpc-remote-machine.cpp`, not from `jsonrpc-discover.json`). Params are always named objects.
 */
export interface MachineRpcMethods {
  emulator: EmulatorVersion;
  /** The server's JSON-RPC API version (`get_version`): 0.5.0 / 0.6.0 / 0.7.0. */
  jsonrpcApi: string;
  getVersion: string;
  shutdown: string;
  /** `{directory, runtime_config?}` */
  load: string;
  /** `{directory}` (0.19) or `{directory, sharing}` (0.20+): see `storeTakesSharing`. */
  store: string;
  storeTakesSharing: boolean;
  /** `{mcycle_end}` → break reason string. */
  run: string;
  /** → base64 hash. */
  getRootHash: string;
  /** `{reg}` → uint64 (bare JSON number: needs BigInt-safe JSON). */
  readReg: string;
  /** `{address, length}` → base64. */
  readMemory: string;
  /** 0.21 only: `{length}` → `{cmd, reason, available_length, data}`; before 0.21 emulated with read_reg + read_memory. */
  receiveCmioRequest: string | undefined;
  /** `{reason, data}`; 0.21 also takes `revert_root_hash`, which a GIO answer must not pass (§1.5). */
  sendCmioResponse: string;
  /** `{config, runtime_config?}`: a new machine in an empty server. */
  create: string;
  /** → the emulator's default machine config. */
  getDefaultConfig: string;
  /** `{range: {label?, start, length, backing_store}}`: swaps a flash drive's contents (0.21). */
  replaceMemoryRange: string;
  /** Break reasons `run` may return in this version (§1.9). */
  breakReasons: readonly string[];
}

const BREAK_REASONS_019 = ['failed', 'halted', 'yielded_manually', 'yielded_automatically', 'yielded_softly', 'reached_target_mcycle'] as const;

const COMMON = {
  getVersion: 'get_version',
  shutdown: 'shutdown',
  load: 'machine.load',
  store: 'machine.store',
  run: 'machine.run',
  getRootHash: 'machine.get_root_hash',
  readReg: 'machine.read_reg',
  readMemory: 'machine.read_memory',
  sendCmioResponse: 'machine.send_cmio_response',
  create: 'machine.create',
  getDefaultConfig: 'machine.get_default_config',
  replaceMemoryRange: 'machine.replace_memory_range',
} as const;

export const MACHINE_RPC_METHODS: Readonly<Record<EmulatorVersion, Readonly<MachineRpcMethods>>> = {
  '0.19': { ...COMMON, emulator: '0.19', jsonrpcApi: '0.5.0', storeTakesSharing: false, receiveCmioRequest: undefined, breakReasons: BREAK_REASONS_019 },
  '0.20': {
    ...COMMON,
    emulator: '0.20',
    jsonrpcApi: '0.6.0',
    storeTakesSharing: true,
    receiveCmioRequest: undefined,
    breakReasons: [...BREAK_REASONS_019, 'console_output', 'console_input'],
  },
  '0.21': {
    ...COMMON,
    emulator: '0.21',
    jsonrpcApi: '0.7.0',
    storeTakesSharing: true,
    receiveCmioRequest: 'machine.receive_cmio_request',
    breakReasons: [...BREAK_REASONS_019, 'console_output', 'console_input', 'mcycle_overflow'],
  },
};

/**
 * The emulator version whose JSON-RPC API version is `getVersionResult` (`get_version`: 0.5 → 0.19,
 * 0.6 → 0.20, 0.7 → 0.21; cartesi-gio.md §1.9). The result shape `{major, minor, …}` is inferred.
 */
export function emulatorVersionOf(getVersionResult: JsonValue): EmulatorVersion {
  const major = isJsonObject(getVersionResult) ? getVersionResult['major'] : undefined;
  const minor = isJsonObject(getVersionResult) ? getVersionResult['minor'] : undefined;
  const found = EMULATOR_VERSIONS.find((v) => {
    const [ma, mi] = MACHINE_RPC_METHODS[v].jsonrpcApi.split('.').map(Number);
    return Number(major) === ma && Number(minor) === mi;
  });
  if (found === undefined) {
    throw new MachineRpcError('get_version', `Unsupported cartesi-jsonrpc-machine API version ${stringifyJsonBigInt(getVersionResult)} (this driver speaks ${EMULATOR_VERSIONS.map((v) => MACHINE_RPC_METHODS[v].jsonrpcApi).join(', ')})`);
  }
  return found;
}
