import { CID } from 'multiformats/cid';
import { asOracleError, DeviceError, OracleError, StoreError, throwIfAborted } from '../errors.ts';
import type { AbortOptions, BlockSource } from '../protocol/blocks.ts';
import { MAX_BLOCK_BYTES, SHA2_256_CODE, verifyBlock } from '../protocol/blocks.ts';

/**
 * GIO domain of the dehashing device: id = binary CID, reply = the raw block (design §7; the Lambada
 * IPFS_GET_BLOCK convention, cartesi-gio.md §3.1).
 */
export const GIO_DOMAIN_IPFS_BLOCK = 0x25;

/**
 * Response code of a block reply. Non-zero because emulator 0.21 rejects code 0 (ADVANCE_STATE) for a GIO
 * answer (cartesi-gio.md §1.5); the guest ignores it and hashes the bytes instead.
 */
export const GIO_RESPONSE_OK = 1;

/**
 * Response code of an in-band refusal, with a UTF-8 `CODE: message` as data (cartesi-gio.md §6: only
 * deterministic errors, such as a malformed CID, are answered in band; the cmio helper reports it as
 * status 6). Code 0 is never sent: the helper reads code 0 with no bytes as "the yield was not answered".
 */
export const GIO_RESPONSE_ERROR = 0xffff;

/** Both cmio buffers are 2 MiB in every emulator version (cartesi-gio.md §1.1); a larger reply is refused (§1.5). */
export const CMIO_BUFFER_BYTES = 2 * 1024 * 1024;

/** A GIO answer as `send_cmio_response` takes it: the response code (16 bits) and the rx-buffer bytes. */
export interface GioResponse {
  code: number;
  data: Uint8Array;
}

export type AnswerGioOptions = AbortOptions;

/**
 * Answers one GIO request from `source`: domain 0x25 with the block whose binary CID is `id`, checked
 * against that CID first (a store that hands out wrong bytes must not reach the machine, even though the
 * guest checks again).
 *
 * Errors (OracleError `code`):
 * - `ORACLE_ERR_DEVICE` (DeviceError): unknown domain, an id that is not exactly one binary CID, a hash other
 *   than sha2-256: the device protocol is misused (not an HTTP request: no BadRequestError). Deterministic: every honest host refuses the same request, so it may be answered in band
 *   (`gioErrorResponse`).
 * - `ORACLE_ERR_BLOCK_MISSING`: the source does not have the block (from the source).
 * - `ORACLE_ERR_BLOCK_CORRUPT`: the stored bytes do not hash to the CID.
 * - `ORACLE_ERR_STORE`: the block is larger than one device reply (2 MiB), or the source failed otherwise.
 * The last three depend on this host's store, not on the request: a machine host should abort the run
 * rather than answer them (design §7: an honest host never answers "not found").
 */
export async function answerGio(domain: number, id: Uint8Array, source: BlockSource, options: AnswerGioOptions = {}): Promise<GioResponse> {
  throwIfAborted(options.signal);
  if (!Number.isInteger(domain) || domain < 0 || domain > 0xffff) {
    throw new DeviceError(`Invalid GIO domain ${String(domain)} (expected an integer 0..0xffff)`);
  }
  if (domain !== GIO_DOMAIN_IPFS_BLOCK) {
    throw new DeviceError(`Unknown GIO domain 0x${domain.toString(16)} (this responder answers only 0x${GIO_DOMAIN_IPFS_BLOCK.toString(16)}, IPFS block by CID)`);
  }
  const cid = decodeBinaryCid(id);
  const signal = options.signal;
  let bytes: Uint8Array;
  try {
    bytes = await source.get(cid, signal === undefined ? {} : { signal });
  } catch (err) {
    if (err instanceof OracleError) throw err;
    throw new StoreError(`Block source failed for ${cid}: ${(err as Error).message}`, { cause: err });
  }
  throwIfAborted(signal);
  if (bytes.byteLength > MAX_BLOCK_BYTES || bytes.byteLength > CMIO_BUFFER_BYTES) {
    throw new StoreError(`Block ${cid} is ${bytes.byteLength} bytes: larger than one device reply (${CMIO_BUFFER_BYTES} bytes)`);
  }
  await verifyBlock(cid, bytes);
  return { code: GIO_RESPONSE_OK, data: bytes };
}

/**
 * Decodes a GIO id as one binary CID (CIDv1 = varint version ‖ varint codec ‖ multihash; CIDv0 = a bare
 * 34-byte sha2-256 multihash), refusing trailing bytes and hashes other than sha2-256.
 */
export function decodeBinaryCid(id: Uint8Array): CID {
  if (id.byteLength === 0) throw new DeviceError('Malformed CID in GIO request: empty id');
  let cid: CID;
  try {
    cid = CID.decode(id);
  } catch (err) {
    throw new DeviceError(`Malformed CID in GIO request (${id.byteLength} bytes, 0x${hexPrefix(id)}): ${(err as Error).message}`, { cause: err });
  }
  if (cid.multihash.code !== SHA2_256_CODE) {
    throw new DeviceError(`Unsupported multihash 0x${cid.multihash.code.toString(16)} in GIO request for ${cid} (expected sha2-256)`);
  }
  return cid;
}

/** The in-band refusal for `err`: code 0xFFFF and `ORACLE_ERR_…: message` in UTF-8, capped to the rx buffer. */
export function gioErrorResponse(err: unknown): GioResponse {
  const e = asOracleError(err);
  const text = `${e.code}: ${e.message}`;
  const data = new TextEncoder().encode(text);
  return { code: GIO_RESPONSE_ERROR, data: data.byteLength > CMIO_BUFFER_BYTES ? data.subarray(0, CMIO_BUFFER_BYTES) : data };
}

function hexPrefix(bytes: Uint8Array): string {
  const head = Buffer.from(bytes.subarray(0, 16)).toString('hex');
  return bytes.byteLength > 16 ? `${head}…` : head;
}

/**
 * Answers one GIO request of a domain other than 0x25 (0x26 record, 0x27 control): resolves with the
 * answer, including in-band refusals; a rejection means the run must stop (the signal fired, this host broke).
 */
export type GioHandler = (id: Uint8Array, signal?: AbortSignal) => Promise<GioResponse>;
