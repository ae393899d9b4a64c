import * as dagCbor from '@ipld/dag-cbor';
import { CID } from 'multiformats/cid';
import { InvalidRecordError } from '../errors.ts';
import { DAG_CBOR_CODE, sha256Multihash } from './blocks.ts';
import { encodeRecordCbor } from './record-cbor.ts';
import type { HeaderList } from './headers.ts';

export const RECORD_VERSION = 1;

/** The request half of a record: what selects it (design §3). */
export interface RecordRequest {
  readonly method: string;
  readonly url: string;
  /** Variant-selecting request headers (at least `accept`). */
  readonly headers: Readonly<Record<string, string>>;
  readonly bodyDigest?: string;
}

export interface RecordResponse {
  readonly status: number;
  readonly headers: HeaderList;
  /** UnixFS root of the body as received (content-encoding kept), or null for a response with no body. */
  readonly body: CID | null;
  readonly size: number;
  readonly sha256: Uint8Array;
  readonly sha512: Uint8Array;
}

/** A fetch the oracle witnessed (design §3). Its DAG-CBOR block's CID is its identity. */
export interface FetchRecord {
  readonly v: number;
  readonly request: RecordRequest;
  readonly response: RecordResponse;
  /** RFC 3339 UTC time the upstream answered. */
  readonly fetchedAt: string;
  /** ed25519 public key of the signer (32 bytes). */
  readonly oracle: Uint8Array;
  /** CID of a Nitro attestation document binding `oracle` (enclave mode). */
  readonly attestation?: CID;
}

export interface EncodedBlock {
  cid: CID;
  bytes: Uint8Array;
}

/** Encodes a value as a DAG-CBOR block (deterministic encoding: sorted map keys, no floats). */
export async function encodeCborBlock(value: unknown): Promise<EncodedBlock> {
  return cborBlock(dagCbor.encode(value));
}

function cborBlock(bytes: Uint8Array): Promise<EncodedBlock> {
  return Promise.resolve({ cid: CID.createV1(DAG_CBOR_CODE, sha256Multihash(bytes)), bytes });
}

export async function encodeRecord(record: FetchRecord): Promise<EncodedBlock> {
  assertRecord(record);
  const bytes = encodeRecordCbor(record);
  if (bytes !== undefined) return cborBlock(bytes);
  // Omit undefined optionals: DAG-CBOR has no undefined.
  const request: Record<string, unknown> = { method: record.request.method, url: record.request.url, headers: record.request.headers };
  if (record.request.bodyDigest !== undefined) request['bodyDigest'] = record.request.bodyDigest;
  const value: Record<string, unknown> = {
    v: record.v,
    request,
    response: { ...record.response, headers: record.response.headers.map(([n, v]) => [n, v]) },
    fetchedAt: record.fetchedAt,
    oracle: record.oracle,
  };
  if (record.attestation !== undefined) value['attestation'] = record.attestation;
  return encodeCborBlock(value);
}

export function decodeRecord(bytes: Uint8Array): FetchRecord {
  let value: unknown;
  try {
    value = dagCbor.decode(bytes);
  } catch (cause) {
    throw new InvalidRecordError('Record block is not valid DAG-CBOR', { cause });
  }
  assertRecord(value);
  return value;
}

const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

function fail(message: string): never {
  throw new InvalidRecordError(message);
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** Validates the shape of a record (a guard: decoded bytes are untrusted). */
export function assertRecord(value: unknown): asserts value is FetchRecord {
  if (!isObject(value)) fail('Record is not a map');
  if (value['v'] !== RECORD_VERSION) fail(`Invalid record version: ${String(value['v'])} (expected ${RECORD_VERSION})`);
  const req = value['request'];
  if (!isObject(req)) fail('Record has no request map');
  if (typeof req['method'] !== 'string' || typeof req['url'] !== 'string') fail('Record request needs string method and url');
  if (!isObject(req['headers']) || !Object.values(req['headers']).every((h) => typeof h === 'string')) {
    fail('Record request headers must be a map of strings');
  }
  if (req['bodyDigest'] !== undefined && typeof req['bodyDigest'] !== 'string') fail('Record bodyDigest must be a string');
  const res = value['response'];
  if (!isObject(res)) fail('Record has no response map');
  const status = res['status'];
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 100 || status > 999) {
    fail(`Invalid response status: ${String(status)} (expected an integer 100-999)`);
  }
  const headers = res['headers'];
  if (!Array.isArray(headers) || !headers.every((h) => Array.isArray(h) && h.length === 2 && typeof h[0] === 'string' && typeof h[1] === 'string')) {
    fail('Record response headers must be a list of [name, value] string pairs');
  }
  if (res['body'] !== null && CID.asCID(res['body']) === null) fail('Record response body must be a CID or null');
  const size = res['size'];
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size < 0) fail(`Invalid body size: ${String(size)}`);
  if (!(res['sha256'] instanceof Uint8Array) || res['sha256'].byteLength !== 32) fail('Record sha256 must be 32 bytes');
  if (!(res['sha512'] instanceof Uint8Array) || res['sha512'].byteLength !== 64) fail('Record sha512 must be 64 bytes');
  if (typeof value['fetchedAt'] !== 'string' || !RFC3339_UTC.test(value['fetchedAt'])) {
    fail(`Invalid fetchedAt: ${String(value['fetchedAt'])} (expected RFC 3339 UTC)`);
  }
  if (!(value['oracle'] instanceof Uint8Array) || value['oracle'].byteLength !== 32) fail('Record oracle key must be 32 bytes');
  if (value['attestation'] !== undefined && CID.asCID(value['attestation']) === null) fail('Record attestation must be a CID');
}
