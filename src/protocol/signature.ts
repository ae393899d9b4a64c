import nacl from 'tweetnacl';
import type { CID } from 'multiformats/cid';
import { BadSignatureError, UntrustedKeyError } from '../errors.ts';
import { equalBytes } from './blocks.ts';

/** Domain separation so a record signature can never be replayed as any other statement (design §3). */
export const RECORD_SIGNATURE_PREFIX = new TextEncoder().encode('fetch-oracle/record/v1\n');

export interface SignedRecord {
  readonly record: CID;
  /** ed25519 signature (64 bytes) over RECORD_SIGNATURE_PREFIX ‖ record CID bytes. */
  readonly signature: Uint8Array;
}

export function recordSigningMessage(record: CID): Uint8Array {
  const out = new Uint8Array(RECORD_SIGNATURE_PREFIX.byteLength + record.bytes.byteLength);
  out.set(RECORD_SIGNATURE_PREFIX, 0);
  out.set(record.bytes, RECORD_SIGNATURE_PREFIX.byteLength);
  return out;
}

export function signRecordCid(record: CID, secretKey: Uint8Array): SignedRecord {
  return { record, signature: nacl.sign.detached(recordSigningMessage(record), secretKey) };
}

/** Throws BadSignatureError unless `signature` is `publicKey`'s signature of the record CID. */
export function verifyRecordSignature(signed: SignedRecord, publicKey: Uint8Array): void {
  if (signed.signature.byteLength !== nacl.sign.signatureLength) {
    throw new BadSignatureError(`Signature of record ${signed.record} is ${signed.signature.byteLength} bytes (expected 64)`);
  }
  if (publicKey.byteLength !== nacl.sign.publicKeyLength) {
    throw new BadSignatureError(`Oracle key of record ${signed.record} is ${publicKey.byteLength} bytes (expected 32)`);
  }
  if (!nacl.sign.detached.verify(recordSigningMessage(signed.record), signed.signature, publicKey)) {
    throw new BadSignatureError(`Bad signature on record ${signed.record} for oracle key ${toHex(publicKey)}`);
  }
}

/** Trusted oracle keys: a record's `oracle` must be one of them. */
export function assertTrustedKey(publicKey: Uint8Array, trusted: readonly Uint8Array[], what: string): void {
  if (!trusted.some((k) => equalBytes(k, publicKey))) {
    throw new UntrustedKeyError(
      `${what} is signed by oracle key ${toHex(publicKey)}, which is not trusted (trusted: ${trusted.map(toHex).join(', ') || 'none'}); pass --trust ${toHex(publicKey)} if you trust it`,
    );
  }
}

export function toHex(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex');
}

export function fromHex(hex: string, expectedBytes?: number): Uint8Array {
  if (!/^([0-9a-fA-F]{2})*$/.test(hex)) throw new Error(`Invalid hex string: ${JSON.stringify(hex.slice(0, 80))}`);
  const out = new Uint8Array(Buffer.from(hex, 'hex'));
  if (expectedBytes !== undefined && out.byteLength !== expectedBytes) {
    throw new Error(`Expected ${expectedBytes} bytes of hex, got ${out.byteLength}`);
  }
  return out;
}
