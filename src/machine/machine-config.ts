/**
 * The machine of a run (docs/cartesi.md "Drives"): RAM backed by the kernel image, the bootargs that start
 * /sbin/fetch-oracle-init, and four flash drives in a fixed order, so that the guest finds them as
 * /dev/pmem0..3: root (the image), input (a tar), output (the guest writes a tar), result (4 KiB text).
 */
import { InvalidConfigError } from '../errors.ts';
import type { JsonValue } from './bigint-json.ts';
import { isJsonObject } from './machine-rpc-client.ts';
import { MachineRpcError } from './machine-rpc-error.ts';

export const MiB = 1024 * 1024;
/** Physical address of RAM in every emulator version (the flash drives go after it). */
export const RAM_START = 0x8000_0000n;
export const DEFAULT_RAM_MIB = 2048;
export const DEFAULT_INPUT_MIB = 64;
export const DEFAULT_OUTPUT_MIB = 256;
export const RESULT_DRIVE_BYTES = 4096;
/** The emulator maps memory in 4 KiB pages: every drive length is a multiple. */
export const PAGE_BYTES = 4096;
export const BOOTARGS = 'quiet earlycon=sbi console=hvc0 root=/dev/pmem0 rw init=/sbin/fetch-oracle-init';
export const DRIVE_LABELS = ['root', 'input', 'output', 'result'] as const;
export type DriveLabel = (typeof DRIVE_LABELS)[number];

export interface Drive {
  label: DriveLabel;
  start: bigint;
  length: bigint;
}

export interface MachineLayout {
  ramBytes: bigint;
  drives: Record<DriveLabel, Drive>;
}

export interface LayoutInit {
  ramMib: number;
  /** The root image's size in bytes (a multiple of 4 KiB). */
  imageBytes: number;
  inputMib: number;
  outputMib: number;
}

function nextPowerOfTwo(n: bigint): bigint {
  let p = 1n;
  while (p < n) p <<= 1n;
  return p;
}

/**
 * Places the drives as the emulator (and its Lua CLI) does when no start is given: each at the lowest
 * address past the previous one that is aligned to its length rounded up to a power of two, the first past
 * the end of RAM. Computed here because the runner reads the result and output drives by address.
 */
export function machineLayout(init: LayoutInit): MachineLayout {
  for (const [name, v] of [['RAM', init.ramMib], ['input drive', init.inputMib], ['output drive', init.outputMib]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new InvalidConfigError(`${name} size must be a positive number of MiB, got ${v}`);
  }
  if (init.ramMib < 256) throw new InvalidConfigError(`RAM of ${init.ramMib} MiB is too small for Linux and Node (at least 256)`);
  if (init.imageBytes <= 0 || init.imageBytes % PAGE_BYTES !== 0) {
    throw new InvalidConfigError(`The root image is ${init.imageBytes} bytes: a machine drive must be a non-empty multiple of ${PAGE_BYTES} bytes`);
  }
  const ramBytes = BigInt(init.ramMib) * BigInt(MiB);
  const lengths: Record<DriveLabel, bigint> = {
    root: BigInt(init.imageBytes),
    input: BigInt(init.inputMib) * BigInt(MiB),
    output: BigInt(init.outputMib) * BigInt(MiB),
    result: BigInt(RESULT_DRIVE_BYTES),
  };
  let next = RAM_START + ramBytes;
  const drives = {} as Record<DriveLabel, Drive>;
  for (const label of DRIVE_LABELS) {
    const length = lengths[label];
    const align = nextPowerOfTwo(length);
    const start = next % align === 0n ? next : next - (next % align) + align;
    drives[label] = { label, start, length };
    next = start + align;
  }
  return { ramBytes, drives };
}

export interface MachineConfigInit {
  kernel: string;
  image: string;
  /** The input drive's backing file (a tar padded to its length), or none: zeros. */
  inputFile?: string;
  layout: MachineLayout;
}

/** A backing store that the machine reads but never writes back (`shared: false`: changes stay in memory). */
function backing(dataFilename: string): Record<string, JsonValue> {
  return { data_filename: dataFilename, shared: false, create: false, truncate: false };
}

/** The `machine.create` config: the emulator's default config (`machine.get_default_config`) with ours on top. */
export function machineConfig(defaults: JsonValue, init: MachineConfigInit): JsonValue {
  if (!isJsonObject(defaults) || !isJsonObject(defaults['ram']) || !isJsonObject(defaults['dtb'])) {
    throw new MachineRpcError('machine.get_default_config', 'Unexpected default config: no ram or dtb object');
  }
  const files: Record<DriveLabel, string> = { root: init.image, input: init.inputFile ?? '', output: '', result: '' };
  return {
    ...defaults,
    ram: { ...defaults['ram'], length: init.layout.ramBytes, backing_store: backing(init.kernel) },
    dtb: { ...defaults['dtb'], bootargs: BOOTARGS, init: '', entrypoint: '' },
    flash_drive: DRIVE_LABELS.map((label) => {
      const d = init.layout.drives[label];
      return { label, start: d.start, length: d.length, read_only: false, backing_store: backing(files[label]) };
    }),
  };
}

/** Runtime settings: the console to the server's stdout (forwarded to the user's stderr), no console input. */
export const RUNTIME_CONFIG: JsonValue = {
  console: { output_destination: 'to_stdout', output_flush_mode: 'every_line', input_source: 'from_null' },
};
