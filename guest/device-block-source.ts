import { spawn } from 'node:child_process';
import type { ChildProcessWithoutNullStreams } from 'node:child_process';
import type { CID } from 'multiformats/cid';
import { BlockCorruptError, BlockMissingError, DeviceError, errorFromCode, throwIfAborted } from '../src/errors.ts';
import type { Logger } from '../src/log.ts';
import { NOOP_LOGGER } from '../src/log.ts';
import type { AbortOptions, BlockSource } from '../src/protocol/blocks.ts';
import { MAX_BLOCK_BYTES } from '../src/protocol/blocks.ts';
import { CMIO_BUFFER_BYTES, GIO_DOMAIN_IPFS_BLOCK } from '../src/machine/gio-responder.ts';

/** Helper status of a host's in-band refusal (guest/cmio/cmio-helper.c HELPER_STATUS_HOST_ERROR). */
const HELPER_STATUS_HOST_ERROR = 6;

/** Bit 31 of a request frame's first u32: a u32 domain follows (guest/cmio/cmio-helper.c FRAME_DOMAIN_FLAG). */
const FRAME_DOMAIN_FLAG = 0x8000_0000;

/** The one block that is legitimately empty: the raw block of an empty body. */
const EMPTY_RAW_BLOCK = 'bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku';

export interface DeviceBlockSourceInit {
  /** The cmio helper binary (guest/cmio): it owns /dev/cmio and speaks frames on stdin/stdout. */
  helperPath: string;
  /** Extra environment for the helper (CMIO_SIM_SOCKET for the simulated device in tests). */
  env?: NodeJS.ProcessEnv;
  logger?: Logger;
}

/**
 * Blocks by CID through the dehashing device (design §7): one GIO yield (domain 0x25, id = binary CID) per
 * block, made by the cmio helper. Frames: request `u32be length ‖ CID bytes`; reply `u32be status ‖
 * u32be length ‖ bytes` (status 0 = the rx bytes; otherwise an error message). The device is one channel,
 * so requests go one at a time. Bytes are not verified here: wrap in CachingBlockSource / verifyingSource.
 * `request` yields to any other GIO domain (0x26 record, 0x27 control) with the frame
 * `u32be (0x80000000 | length) ‖ u32be domain ‖ id`.
 */
export class DeviceBlockSource implements BlockSource {
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #logger: Logger;
  #queue: Promise<unknown> = Promise.resolve();
  #buffer: Buffer = Buffer.alloc(0);
  #waiter: (() => void) | undefined;
  #dead: Error | undefined;
  /** Round trips made (one per block fetched). */
  roundTrips = 0;
  bytes = 0;

  constructor(init: DeviceBlockSourceInit) {
    this.#logger = init.logger ?? NOOP_LOGGER;
    this.#child = spawn(init.helperPath, [], { env: { ...process.env, ...init.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.stdout.on('data', (d: Buffer) => {
      this.#buffer = this.#buffer.byteLength === 0 ? d : Buffer.concat([this.#buffer, d]);
      this.#wake();
    });
    this.#child.stderr.on('data', (d: Buffer) => this.#logger.warn('cmio helper: %s', d.toString().trim()));
    const fail = (err: Error): void => {
      this.#dead ??= err;
      this.#wake();
    };
    this.#child.on('error', (err) => fail(new DeviceError(`Cannot run the cmio helper ${init.helperPath}: ${err.message}`)));
    this.#child.on('exit', (code, signal) => fail(new DeviceError(`The cmio helper exited (${signal ?? code}); no more blocks can be fetched`)));
    this.#child.stdin.on('error', () => {});
  }

  #wake(): void {
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.();
  }

  async #read(n: number): Promise<Buffer> {
    while (this.#buffer.byteLength < n) {
      if (this.#dead !== undefined) throw this.#dead;
      await new Promise<void>((r) => (this.#waiter = r));
    }
    const out = this.#buffer.subarray(0, n);
    this.#buffer = this.#buffer.subarray(n);
    return out;
  }

  get(cid: CID, options?: AbortOptions): Promise<Uint8Array> {
    throwIfAborted(options?.signal);
    const run = this.#queue.then(() => this.#roundTrip(cid));
    this.#queue = run.catch(() => {});
    return run;
  }

  /**
   * One GIO request to `domain` (16 bits, not a rollups reason) with `id`: the host's reply bytes (possibly
   * none). A refusal in band throws the host's error class, anything else DeviceError. Queued behind `get`.
   */
  request(domain: number, id: Uint8Array, options?: AbortOptions): Promise<Uint8Array> {
    throwIfAborted(options?.signal);
    if (!Number.isInteger(domain) || domain < 0 || domain > 0xffff) throw new DeviceError(`Invalid GIO domain ${String(domain)} (expected an integer 0..0xffff)`);
    if (id.byteLength > CMIO_BUFFER_BYTES) throw new DeviceError(`GIO 0x${domain.toString(16)} request of ${id.byteLength} bytes exceeds the tx buffer (${CMIO_BUFFER_BYTES} bytes)`);
    const run = this.#queue.then(() => this.#exchange(domain, id, `GIO 0x${domain.toString(16)} request`, CMIO_BUFFER_BYTES));
    this.#queue = run.catch(() => {});
    return run;
  }

  async #roundTrip(cid: CID): Promise<Uint8Array> {
    const body = await this.#exchange(GIO_DOMAIN_IPFS_BLOCK, cid.bytes, cid.toString(), MAX_BLOCK_BYTES);
    // An honest host never answers "not found": the netlock commits to every block (design §7).
    if (body.byteLength === 0 && cid.toString() !== EMPTY_RAW_BLOCK) {
      throw new BlockMissingError(cid.toString(), `Dehashing device returned an empty reply for ${cid}: the host does not have a block the netlock commits to`);
    }
    return body;
  }

  /** One frame out, one reply in; 0x25 keeps the original frame (no domain field). */
  async #exchange(domain: number, id: Uint8Array, what: string, limit: number): Promise<Uint8Array> {
    if (this.#dead !== undefined) throw this.#dead;
    const explicit = domain !== GIO_DOMAIN_IPFS_BLOCK;
    const frame = Buffer.alloc((explicit ? 8 : 4) + id.byteLength);
    frame.writeUInt32BE(explicit ? (FRAME_DOMAIN_FLAG | id.byteLength) >>> 0 : id.byteLength, 0);
    if (explicit) frame.writeUInt32BE(domain, 4);
    frame.set(id, explicit ? 8 : 4);
    this.#child.stdin.write(frame);
    const head = await this.#read(8);
    const status = head.readUInt32BE(0);
    const length = head.readUInt32BE(4);
    if (length > limit) {
      const message = `Device reply for ${what} claims ${length} bytes (limit ${limit})`;
      throw explicit ? new DeviceError(message) : new BlockCorruptError(what, message);
    }
    const body = new Uint8Array(await this.#read(length));
    this.roundTrips++;
    this.bytes += length;
    if (status !== 0) {
      const text = Buffer.from(body).toString('utf8');
      // Status 6 (HELPER_STATUS_HOST_ERROR) carries the host's in-band refusal, `CODE: message`: rethrow its class.
      const refused = status === HELPER_STATUS_HOST_ERROR ? /^host refused the request \(response code 0x[0-9a-f]+\): (ORACLE_ERR_[A-Z0-9_]+): /.exec(text) : null;
      if (refused !== null) throw errorFromCode(refused[1]!, `Dehashing device failed for ${what}: ${text}`);
      throw new DeviceError(`Dehashing device failed for ${what}: status ${status}: ${text}`);
    }
    return body;
  }

  /** Ends the helper (EOF on its stdin). Idempotent. */
  async close(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return;
    const exited = new Promise<void>((r) => this.#child.once('exit', () => r()));
    this.#child.stdin.end();
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 2000);
    await exited;
    clearTimeout(timer);
  }
}
