import * as dagCbor from '@ipld/dag-cbor';
import { sign } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { CID } from 'multiformats/cid';
import { BadCountersignatureError } from '../errors.ts';
import type { BlockSource } from './blocks.ts';
import { encodeCborBlock } from './record.ts';
import type { EncodedBlock } from './record.ts';
import { ed25519Verifies, PUBLIC_KEY_BYTES, privateKeyObject, SIGNATURE_BYTES, toHex } from './signature.ts';

export const COUNTERSIGNATURE_TYPE = 'fetch-oracle/countersignature';
export const COUNTERSIGNATURE_VERSION = 1;

/**
 * Domain separation apart from the record prefix (`fetch-oracle/record/v1\n`): a countersignature can never be
 * taken for a record signature, nor the other way round, although both sign a CID with the same kind of key.
 */
export const COUNTERSIGNATURE_PREFIX = new TextEncoder().encode('fetch-oracle/countersignature/v1\n');

/**
 * What a witness states (docs/formats.md "Countersignature"): "fetching this record's request myself at
 * `fetchedAt`, I got the status and body bytes that `record` describes". A DAG-CBOR block; its CID is signed.
 */
export interface Countersignature {
  readonly v: number;
  readonly type: string;
  /** The record vouched for: the netlock entry's own, or the witness's record when it saw something else. */
  readonly record: CID;
  /** The witness's ed25519 public key (32 bytes). */
  readonly witness: Uint8Array;
  /** RFC 3339 UTC time of the witness's own fetch. */
  readonly fetchedAt: string;
}

/** A countersignature as a netlock entry carries it: the block's CID and the witness's signature of it. */
export interface SignedCountersignature {
  readonly countersignature: CID;
  /** ed25519 (64 bytes) over COUNTERSIGNATURE_PREFIX ‖ countersignature CID bytes. */
  readonly signature: Uint8Array;
}

const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z$/;

function fail(message: string): never {
  throw new BadCountersignatureError(message);
}

/** Validates a decoded countersignature (a guard: decoded bytes are untrusted). */
export function assertCountersignature(value: unknown, cid?: CID): asserts value is Countersignature {
  const at = cid === undefined ? 'Countersignature' : `Countersignature ${cid}`;
  if (typeof value !== 'object' || value === null || Array.isArray(value) || value instanceof Uint8Array) fail(`${at} is not a map`);
  const v = value as Record<string, unknown>;
  if (v['type'] !== COUNTERSIGNATURE_TYPE) fail(`${at} has type ${String(v['type'])} (expected ${COUNTERSIGNATURE_TYPE})`);
  if (v['v'] !== COUNTERSIGNATURE_VERSION) fail(`${at} has version ${String(v['v'])} (expected ${COUNTERSIGNATURE_VERSION})`);
  if (CID.asCID(v['record']) === null) fail(`${at} names no record CID`);
  if (!(v['witness'] instanceof Uint8Array) || v['witness'].byteLength !== PUBLIC_KEY_BYTES) fail(`${at} witness key must be ${PUBLIC_KEY_BYTES} bytes`);
  if (typeof v['fetchedAt'] !== 'string' || !RFC3339_UTC.test(v['fetchedAt'])) fail(`${at} has fetchedAt ${String(v['fetchedAt'])} (expected RFC 3339 UTC)`);
  const extra = Object.keys(v).filter((k) => !['v', 'type', 'record', 'witness', 'fetchedAt'].includes(k));
  if (extra.length > 0) fail(`${at} has unknown field(s) ${extra.join(', ')}`);
}

export function encodeCountersignature(c: Omit<Countersignature, 'v' | 'type'>): Promise<EncodedBlock> {
  const value: Countersignature = { v: COUNTERSIGNATURE_VERSION, type: COUNTERSIGNATURE_TYPE, record: c.record, witness: c.witness, fetchedAt: c.fetchedAt };
  assertCountersignature(value);
  return encodeCborBlock(value);
}

export function decodeCountersignature(bytes: Uint8Array, cid?: CID): Countersignature {
  let value: unknown;
  try {
    value = dagCbor.decode(bytes);
  } catch (cause) {
    throw new BadCountersignatureError(`${cid === undefined ? 'Countersignature' : `Countersignature ${cid}`} is not valid DAG-CBOR`, { cause });
  }
  assertCountersignature(value, cid);
  return value;
}

export function countersignatureSigningMessage(countersignature: CID): Uint8Array {
  const out = new Uint8Array(COUNTERSIGNATURE_PREFIX.byteLength + countersignature.bytes.byteLength);
  out.set(COUNTERSIGNATURE_PREFIX, 0);
  out.set(countersignature.bytes, COUNTERSIGNATURE_PREFIX.byteLength);
  return out;
}

/** Signs a countersignature block's CID with a tweetnacl secret key (seed ‖ public key) or a private key object. */
export function signCountersignatureCid(countersignature: CID, secretKey: Uint8Array | KeyObject): SignedCountersignature {
  const key = secretKey instanceof Uint8Array ? privateKeyObject(secretKey) : secretKey;
  return { countersignature, signature: new Uint8Array(sign(null, countersignatureSigningMessage(countersignature), key)) };
}

/** Throws BadCountersignatureError unless `signed.signature` is `witness`'s signature of the countersignature CID. */
export function verifyCountersignatureSignature(signed: SignedCountersignature, witness: Uint8Array): void {
  if (signed.signature.byteLength !== SIGNATURE_BYTES) {
    fail(`Signature of countersignature ${signed.countersignature} is ${signed.signature.byteLength} bytes (expected ${SIGNATURE_BYTES})`);
  }
  let ok = false;
  try {
    ok = ed25519Verifies(countersignatureSigningMessage(signed.countersignature), signed.signature, witness);
  } catch {
    ok = false; // not a countersignature at all (no CID to sign)
  }
  if (!ok) fail(`Bad signature on countersignature ${signed.countersignature} for witness key ${toHex(witness)}`);
}

/** Loads a countersignature block (the source is expected to verify hashes), checks its shape and its signature. */
export async function loadCountersignature(signed: SignedCountersignature, source: BlockSource): Promise<Countersignature> {
  const c = decodeCountersignature(await source.get(signed.countersignature), signed.countersignature);
  verifyCountersignatureSignature(signed, c.witness);
  return c;
}
