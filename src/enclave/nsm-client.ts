/**
 * The Nitro Secure Module as the enclave oracle sees it: random bytes and attestation documents.
 *
 * Node cannot issue the NSM ioctl, so HelperNsmClient spawns enclave/nsm/nsm-helper (one process per
 * request): the request CBOR goes to its stdin, the response CBOR comes back on its stdout. Messages follow
 * aws-nitro-enclaves-nsm-api's serde encoding (docs/nitro.md §3): unit requests are a bare text string
 * ("GetRandom"), struct requests a one-entry map ({"Attestation": {user_data, nonce, public_key}}), and
 * responses likewise ({"GetRandom": {"random": bstr}}, {"Attestation": {"document": bstr}}, or
 * {"Error": "<ErrorCode>"}).
 */
import { spawn } from 'node:child_process';
import { decode as cborDecode, encode as cborEncode } from 'cborg';
import { AbortedError, NsmError, throwIfAborted } from '../errors.ts';
import type { AbortOptions } from '../protocol/blocks.ts';
import { MAX_DOCUMENT_BYTES } from '../attestation/index.ts';

/** The NSM request limit (the driver refuses more: `InputTooLarge`). */
export const NSM_REQUEST_MAX_BYTES = 0x1000;
/** The NSM response buffer. */
export const NSM_RESPONSE_MAX_BYTES = 0x3000;
/** Helper stderr kept for error messages. */
const MAX_HELPER_STDERR_BYTES = 4096;

export interface AttestationRequest {
  /** Up to 1024 bytes; the verifier compares it with the oracle's configuration digest. */
  readonly userData?: Uint8Array;
  readonly nonce?: Uint8Array;
  /** The key the document binds: here the oracle's raw 32-byte ed25519 public key. */
  readonly publicKey?: Uint8Array;
}

/** What the enclave oracle needs of the NSM. HelperNsmClient is the only production implementation. */
export interface NsmClient {
  /** Random bytes from the NSM's hardware source (at least one byte; the NSM returns up to 256). */
  getRandom(options?: AbortOptions): Promise<Uint8Array>;
  /** A signed attestation document (COSE_Sign1 bytes exactly as the NSM returned them). */
  attest(request: AttestationRequest, options?: AbortOptions): Promise<Uint8Array>;
}

export interface HelperNsmClientInit {
  /** Path of the nsm-helper binary. */
  helperPath: string;
  /** Environment of the helper. @default process.env (the simulated build reads NSM_SIM_SOCKET from it) */
  env?: NodeJS.ProcessEnv;
}

export function encodeGetRandomRequest(): Uint8Array {
  return cborEncode('GetRandom');
}

export function encodeAttestationRequest(request: AttestationRequest): Uint8Array {
  const body = {
    user_data: request.userData ?? null,
    nonce: request.nonce ?? null,
    public_key: request.publicKey ?? null,
  };
  const bytes = cborEncode({ Attestation: body });
  if (bytes.byteLength > NSM_REQUEST_MAX_BYTES) throw new NsmError(`NSM attestation request is ${bytes.byteLength} bytes; the NSM accepts at most ${NSM_REQUEST_MAX_BYTES}`);
  return bytes;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/**
 * Decodes an NSM response and returns the inner map of the expected variant. `{"Error": code}` and any
 * other shape are NsmErrors naming what came back: the helper's output is checked, not trusted.
 */
export function decodeNsmResponse(bytes: Uint8Array, variant: 'GetRandom' | 'Attestation'): Record<string, unknown> {
  let value: unknown;
  try {
    value = cborDecode(bytes);
  } catch (cause) {
    throw new NsmError(`NSM ${variant} response is not valid CBOR (${bytes.byteLength} bytes): ${(cause as Error).message}`, { cause });
  }
  if (!isRecord(value)) throw new NsmError(`NSM ${variant} response is not a map`);
  const keys = Object.keys(value);
  if (keys.length === 1 && keys[0] === 'Error') throw new NsmError(`NSM refused ${variant}: ${String(value['Error'])}`);
  const inner = value[variant];
  if (keys.length !== 1 || !isRecord(inner)) throw new NsmError(`NSM ${variant} response has an unexpected shape (keys: ${keys.join(', ') || 'none'})`);
  return inner;
}

/** Runs nsm-helper once per request. Stateless: nothing to close. */
export class HelperNsmClient implements NsmClient {
  readonly #init: HelperNsmClientInit;

  constructor(init: HelperNsmClientInit) {
    this.#init = init;
  }

  async getRandom(options: AbortOptions = {}): Promise<Uint8Array> {
    const inner = decodeNsmResponse(await this.#exchange(encodeGetRandomRequest(), options), 'GetRandom');
    const random = inner['random'];
    if (!(random instanceof Uint8Array) || random.byteLength === 0) throw new NsmError('NSM GetRandom response has no random bytes');
    return random;
  }

  async attest(request: AttestationRequest, options: AbortOptions = {}): Promise<Uint8Array> {
    const inner = decodeNsmResponse(await this.#exchange(encodeAttestationRequest(request), options), 'Attestation');
    const document = inner['document'];
    if (!(document instanceof Uint8Array) || document.byteLength === 0) throw new NsmError('NSM Attestation response has no document');
    if (document.byteLength > MAX_DOCUMENT_BYTES) throw new NsmError(`NSM attestation document is ${document.byteLength} bytes (limit ${MAX_DOCUMENT_BYTES})`);
    return document;
  }

  #exchange(request: Uint8Array, options: AbortOptions): Promise<Uint8Array> {
    throwIfAborted(options.signal);
    const { helperPath } = this.#init;
    return new Promise<Uint8Array>((resolve, reject) => {
      const child = spawn(helperPath, [], {
        env: this.#init.env ?? process.env,
        stdio: ['pipe', 'pipe', 'pipe'],
        ...(options.signal === undefined ? {} : { signal: options.signal }),
      });
      const out: Buffer[] = [];
      let outBytes = 0;
      let stderr = '';
      let failed: NsmError | undefined;
      child.stdout.on('data', (d: Buffer) => {
        outBytes += d.byteLength;
        // A response longer than the device buffer cannot come from the NSM: stop reading.
        if (outBytes > NSM_RESPONSE_MAX_BYTES) {
          failed ??= new NsmError(`NSM helper ${helperPath} wrote more than ${NSM_RESPONSE_MAX_BYTES} bytes`);
          child.kill('SIGKILL');
          return;
        }
        out.push(d);
      });
      child.stderr.on('data', (d: Buffer) => {
        if (stderr.length < MAX_HELPER_STDERR_BYTES) stderr += d.toString('utf8').slice(0, MAX_HELPER_STDERR_BYTES - stderr.length);
      });
      child.stdin.on('error', () => {}); // a helper that exits before reading reports through its exit code
      child.on('error', (err) => {
        if ((err as { name?: string }).name === 'AbortError') reject(new AbortedError());
        else reject(new NsmError(`Cannot run NSM helper ${helperPath}: ${err.message}`, { cause: err }));
      });
      child.on('close', (code, signal) => {
        if (options.signal?.aborted === true) return reject(new AbortedError());
        if (failed !== undefined) return reject(failed);
        if (code !== 0) {
          return reject(new NsmError(`NSM helper ${helperPath} failed (${code === null ? `signal ${String(signal)}` : `exit ${code}`}): ${stderr.trim() || 'no message'}`));
        }
        resolve(new Uint8Array(Buffer.concat(out)));
      });
      child.stdin.end(request);
    });
  }
}
