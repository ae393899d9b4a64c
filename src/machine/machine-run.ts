/**
 * `fetch-oracle machine run`: one command inside the real Cartesi Machine (docs/cartesi.md). For a replay
 * the host checks it holds every block of the netlock; it boots the machine (or loads the snapshot), answers
 * every GIO request (0x25 blocks from its store, 0x26 record requests when recording, 0x27 control) until
 * the machine halts, then reads the result and output drives and the root hash. The emulator never
 * outlives this function.
 */
import { mkdtemp, rm, stat, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import type { CID } from 'multiformats/cid';
import { DeviceError, InvalidConfigError, MachineError, throwIfAborted } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { BlockSource } from '../protocol/blocks.ts';
import { toHex } from '../protocol/signature.ts';
import { GIO_DOMAIN_CONTROL, parseControlRequest, RUN_CONFIG_VERSION } from './control.ts';
import type { MissReport, RunConfig, ShimStats } from './control.ts';
import { packInputTar } from './drive-tar.ts';
import type { MachineTools } from './emulator.ts';
import { GIO_DOMAIN_RECORD } from './gio-record-wire.ts';
import { GIO_DOMAIN_IPFS_BLOCK, GIO_RESPONSE_OK } from './gio-responder.ts';
import type { GioHandler, GioResponse } from './gio-responder.ts';
import { JsonRpcServer } from './jsonrpc-server.ts';
import { BOOTARGS, machineConfig, machineLayout, RESULT_DRIVE_BYTES, RUNTIME_CONFIG } from './machine-config.ts';
import type { MachineLayout } from './machine-config.ts';
import { MachineDriver, MCYCLE_MAX } from './machine-driver.ts';
import type { MachineDriverStats } from './machine-driver.ts';
import { checkNetlockBlocks } from './netlock-blocks.ts';
import type { PresenceSource } from './netlock-blocks.ts';
import { checkOutputDir, copyOutput } from './output-dir.ts';
import { parseResultDrive } from './result-drive.ts';
import type { RunResult } from './result-drive.ts';
import { SNAPSHOT_FORMAT, snapshotKey } from './snapshot.ts';
import type { SnapshotCache, SnapshotKeyParts } from './snapshot.ts';

/** mcycles per `machine.run` call: about a second of emulation, so an abort is seen within a second. */
export const RUN_SLICE_MCYCLES = 1n << 27n;

export interface MachineRunInit {
  tools: MachineTools;
  /** The root file system image (`machine image`); never modified. */
  image: string;
  /**
   * Replay: the netlock's root (its blocks are checked before boot). Absent: a record run, and
   * `recordHandler` is required.
   */
  netlockRoot?: CID;
  /**
   * Record: what answers GIO 0x26 (`MachineRecordSession.gio.handle`); the guest records through it
   * instead of replaying a netlock (RunConfig mode "record"). Exactly one of this and `netlockRoot`.
   */
  recordHandler?: GioHandler;
  /** This host's blocks: checked before boot (replay). */
  store: PresenceSource;
  /** Where GIO 0x25 blocks come from (each checked against its CID before it is sent). @default store */
  blockSource?: BlockSource;
  /**
   * What answers GIO 0x25 instead of the verified `blockSource`: a test stands in a host that lies here,
   * to show that the guest stops the run. @default none
   */
  blockHandler?: GioHandler;
  trust: readonly Uint8Array[];
  argv: string[];
  env: Record<string, string>;
  /** The guest clock at the command's start. @default the netlock's newest record time (0 if none; required to record) */
  time?: number;
  inputDir?: string;
  /** Where the output comes back (absent or empty directory). */
  outputDir?: string;
  /** Also (or only) keep the output drive's tar, as the guest wrote it, in this file (`machine check` compares them). */
  outputTar?: string;
  ramMib: number;
  inputMib: number;
  outputMib: number;
  /** Stop (an error) when the machine's mcycle reaches this. @default none */
  maxMcycle?: bigint;
  /** Where snapshots live; undefined = always a cold boot, nothing stored (`--no-snapshot`). */
  snapshots?: SnapshotCache;
  /** The guest's console (the user's stderr). */
  console: Writable;
  logger: Logger;
  signal?: AbortSignal;
}

export interface MachineRunOutcome {
  result: RunResult;
  mode: 'replay' | 'record';
  /** The machine's root hash after it halted, hex. */
  rootHash: string;
  mcycle: bigint;
  misses: MissReport[];
  shimStats: ShimStats | undefined;
  driver: MachineDriverStats;
  /** How the machine started: a cold boot, a cold boot that stored the snapshot, or the snapshot. */
  start: 'cold' | 'cold+stored' | 'snapshot';
  /** Host ms from starting the emulator to the config yield (the shim ready to be told the run). */
  readyMs: number;
  /** mcycle at the config yield. */
  readyMcycle: bigint;
  totalMs: number;
  /** Replay: the netlock's entries and blocks (checked before boot); record: zeros. */
  netlock: { entries: number; blocks: number };
  time: number;
  output: { files: number; bytes: number } | undefined;
  /** Bytes of the output tar (`outputTar`), or undefined when none came back. */
  outputTarBytes: number | undefined;
}

/** Runs argv in the machine; resolves when it halted (CMD's status is in `result.exit`). */
export async function runInMachine(init: MachineRunInit): Promise<MachineRunOutcome> {
  const started = performance.now();
  const { logger, signal } = init;
  const opts = signal === undefined ? {} : { signal };
  if ((init.netlockRoot === undefined) === (init.recordHandler === undefined)) throw new InvalidConfigError('A machine run either replays a netlock (netlockRoot) or records (recordHandler)');
  if (init.recordHandler !== undefined && init.time === undefined) throw new InvalidConfigError('A record run needs its clock (time): there is no netlock to take it from');
  if (init.outputDir !== undefined) await checkOutputDir(init.outputDir);
  const checked = init.netlockRoot === undefined ? undefined : await checkNetlockBlocks(init.netlockRoot, init.store, opts);
  const time = init.time ?? checked?.newestFetchedAt ?? 0;
  const wantOutput = init.outputDir !== undefined || init.outputTar !== undefined;
  const imageBytes = (await stat(init.image).catch((err: unknown) => {
    throw new InvalidConfigError(`Cannot read the image ${init.image} (build one with \`fetch-oracle machine image --out ${init.image}\`): ${(err as Error).message}`);
  })).size;
  const layout = machineLayout({ ramMib: init.ramMib, imageBytes, inputMib: init.inputMib, outputMib: init.outputMib });
  const work = await mkdtemp(join(tmpdir(), 'fetch-oracle-machine-'));
  let server: JsonRpcServer | undefined;
  let driver: MachineDriver | undefined;
  try {
    const inputFile = init.inputDir === undefined ? undefined : await inputDrive(init.inputDir, join(work, 'input.tar'), layout, opts);
    // Told at the config yield, after the snapshot point: record and replay runs share one snapshot.
    const config: RunConfig = {
      v: RUN_CONFIG_VERSION,
      mode: init.netlockRoot === undefined ? 'record' : 'replay',
      ...(init.netlockRoot === undefined ? {} : { netlockRoot: init.netlockRoot.toString() }),
      trust: init.trust.map(toHex),
      time,
      argv: init.argv,
      env: init.env,
      input: inputFile !== undefined,
      output: wantOutput,
    };
    server = await JsonRpcServer.start({ emulator: init.tools.emulator, console: init.console, logger, ...opts });
    logger.info('started %s (pid %d) at %s', init.tools.emulator, server.pid, server.url);
    const emulator = await MachineDriver.detectEmulatorVersion(server.url, opts);
    if (emulator !== '0.21') throw new MachineError(`${init.tools.emulator} speaks the JSON-RPC API of emulator ${emulator}; machine run needs emulator 0.21`);

    const misses: MissReport[] = [];
    let shimStats: ShimStats | undefined;
    let start: MachineRunOutcome['start'] = 'cold';
    let ready: { ms: number; mcycle: bigint } | undefined;
    const snapshot = init.snapshots === undefined ? undefined : await findSnapshot(init, layout, opts);
    const keyParts = snapshot?.parts;
    const control: GioHandler = async (id): Promise<GioResponse> => {
      const machine = driver!;
      const request = parseControlRequest(id);
      if (request.op === 'miss') misses.push(request);
      else if (request.op === 'stats') shimStats = request;
      else {
        if (ready !== undefined) throw new DeviceError('The run config was asked for twice');
        // The snapshot point: booted, shim loaded, nothing of this run read yet.
        if (start === 'cold' && init.snapshots !== undefined && keyParts !== undefined) {
          const key = snapshotKey(keyParts);
          const mcycle = await machine.readReg('mcycle', opts);
          const hash = await init.snapshots.store(machine, key, keyParts, { storedAt: new Date().toISOString(), mcycle: mcycle.toString() }, opts);
          logger.info('stored machine snapshot %s at mcycle %s (root hash %s)', key, String(mcycle), hash);
          start = 'cold+stored';
        }
        // Cold or not, the input drive is swapped in here, so both paths reach the same state.
        if (inputFile !== undefined) {
          const d = layout.drives.input;
          await machine.replaceMemoryRange({ label: d.label, start: d.start, length: d.length, dataFilename: inputFile }, opts);
        }
        ready = { ms: performance.now() - started, mcycle: await machine.readReg('mcycle', opts) };
        logger.info('run config asked for at mcycle %s, %d ms after the start', String(ready.mcycle), Math.round(ready.ms));
        return { code: GIO_RESPONSE_OK, data: new TextEncoder().encode(JSON.stringify(config)) };
      }
      return { code: GIO_RESPONSE_OK, data: new Uint8Array(0) };
    };
    const handlers = new Map<number, GioHandler>([[GIO_DOMAIN_CONTROL, control]]);
    if (init.blockHandler !== undefined) handlers.set(GIO_DOMAIN_IPFS_BLOCK, init.blockHandler);
    if (init.recordHandler !== undefined) handlers.set(GIO_DOMAIN_RECORD, init.recordHandler);
    driver = new MachineDriver({ url: server.url, emulator, source: init.blockSource ?? init.store, handlers, logger });

    if (snapshot?.dir !== undefined) {
      await driver.load(snapshot.dir, { runtimeConfig: RUNTIME_CONFIG, ...opts });
      start = 'snapshot';
      logger.info('loaded machine snapshot %s', snapshot.dir);
    } else {
      const defaults = await driver.defaultConfig(opts);
      await driver.create(machineConfig(defaults, { kernel: init.tools.kernel, image: init.image, layout }), { runtimeConfig: RUNTIME_CONFIG, ...opts });
    }

    let mcycle = await driver.readReg('mcycle', opts);
    const limit = init.maxMcycle ?? MCYCLE_MAX;
    for (;;) {
      throwIfAborted(signal);
      if (mcycle >= limit) throw new MachineError(`The machine reached --max-mcycle ${limit} (mcycle ${mcycle}) before it halted; the emulator was stopped`);
      const end = limit - mcycle > RUN_SLICE_MCYCLES ? mcycle + RUN_SLICE_MCYCLES : limit;
      const r = await driver.run({ mcycleEnd: end, ...opts });
      mcycle = r.mcycle;
      if (r.breakReason === 'halted') break;
    }
    logger.info('machine halted at mcycle %s, %d ms after the start', String(mcycle), Math.round(performance.now() - started));
    const rootHash = Buffer.from(await driver.rootHash(opts)).toString('hex');
    logger.info('root hash %s, %d ms after the start', rootHash, Math.round(performance.now() - started));
    const result = parseResultDrive(await driver.readMemory(layout.drives.result.start, RESULT_DRIVE_BYTES, opts));
    let output: MachineRunOutcome['output'];
    let outputTarBytes: number | undefined;
    if (result.fatal === undefined && wantOutput) {
      if (result.outputBytes > Number(layout.drives.output.length)) throw new MachineError(`The result drive claims ${result.outputBytes} output bytes; the output drive holds ${layout.drives.output.length}`);
      const tar = await driver.readMemory(layout.drives.output.start, result.outputBytes, opts);
      if (init.outputTar !== undefined) {
        await writeFile(init.outputTar, tar, opts);
        outputTarBytes = tar.byteLength;
      }
      if (init.outputDir !== undefined) output = await copyOutput(tar, init.outputDir, logger);
    }
    return {
      result,
      mode: config.mode,
      rootHash,
      mcycle,
      misses,
      shimStats,
      driver: driver.stats,
      start,
      readyMs: ready?.ms ?? Number.NaN,
      readyMcycle: ready?.mcycle ?? 0n,
      totalMs: performance.now() - started,
      netlock: { entries: checked?.entries ?? 0, blocks: checked?.blocks ?? 0 },
      time,
      output,
      outputTarBytes,
    };
  } finally {
    await driver?.close().catch(() => undefined);
    await server?.close();
    await rm(work, { recursive: true, force: true });
  }
}

/** The input tar, padded with zeros to the input drive's length (a drive's file must be exactly its size). */
async function inputDrive(dir: string, file: string, layout: MachineLayout, options: { signal?: AbortSignal }): Promise<string> {
  const length = Number(layout.drives.input.length);
  await packInputTar(dir, file, length, options);
  await truncate(file, length);
  return file;
}

async function findSnapshot(init: MachineRunInit, layout: MachineLayout, options: { signal?: AbortSignal }): Promise<{ parts: SnapshotKeyParts; dir: string | undefined }> {
  const cache = init.snapshots!;
  const parts: SnapshotKeyParts = {
    format: SNAPSHOT_FORMAT,
    image: await cache.fileSha256(init.image, options),
    kernel: await cache.fileSha256(init.tools.kernel, options),
    emulator: await cache.fileSha256(init.tools.emulator, options),
    jsonrpcApi: '0.7.0',
    ramMib: init.ramMib,
    inputMib: init.inputMib,
    outputMib: init.outputMib,
    resultBytes: Number(layout.drives.result.length),
    bootargs: BOOTARGS,
  };
  return { parts, dir: await cache.find(snapshotKey(parts)) };
}
