/**
 * Key birth inside the enclave (design §8): the oracle's ed25519 key is derived from NSM randomness, lives
 * only in this process's memory, and is bound to the enclave image by an NSM attestation document whose
 * `public_key` is the raw 32-byte public key and whose `user_data` is the SHA-256 of the oracle's enclave
 * configuration (a DAG-CBOR block). Records signed with it carry the document's CID (`attestation`).
 */
import { createHash, randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import { decodeAttestation } from '../attestation/index.ts';
import { NsmError, throwIfAborted } from '../errors.ts';
import type { AbortOptions } from '../protocol/blocks.ts';
import { equalBytes, RAW_CODE } from '../protocol/blocks.ts';
import { encodeCborBlock } from '../protocol/record.ts';
import type { EncodedBlock } from '../protocol/record.ts';
import { privateKeyOfSeed, rawPublicKey, toHex } from '../protocol/signature.ts';
import type { SignedRecord } from '../protocol/signature.ts';
import { SigningKey } from '../signing/signing-key.ts';
import type { Signer } from '../signing/signer.ts';
import type { NsmClient } from './nsm-client.ts';

export const ENCLAVE_CONFIG_TYPE = 'fetch-oracle/enclave-config';
/** Domain separation of the seed derivation: these bytes can never be mistaken for another hash input. */
export const ENCLAVE_SEED_PREFIX = new TextEncoder().encode('fetch-oracle/enclave-key/v1\n');
/** NSM random bytes mixed into the seed. */
export const NSM_SEED_BYTES = 32;
/** The kernel file naming the active hardware RNG; in an enclave it must be the NSM's (Trail of Bits, 2024). */
export const RNG_CURRENT_PATH = '/sys/devices/virtual/misc/hw_random/rng_current';

/**
 * What the enclave oracle was started with, as far as it changes what the oracle would sign. Its DAG-CBOR
 * encoding's SHA-256 is the attestation document's `user_data`, so a verifier can check that an attested key
 * ran with an expected configuration (for instance: no extra upstream CA, through which a parent could
 * intercept TLS).
 */
export interface EnclaveConfig {
  readonly v: 1;
  readonly type: typeof ENCLAVE_CONFIG_TYPE;
  /** fetch-oracle version. */
  readonly oracle: string;
  /** The proxy's listen address inside the enclave. */
  readonly listen: string;
  /** The CONNECT proxy every upstream connection goes through (the vsock bridge to the parent). */
  readonly upstreamProxy: string;
  /** SHA-256 (hex, sorted) of each extra PEM CA the upstream TLS client trusts beside the image's bundle. */
  readonly upstreamCaSha256: readonly string[];
  /** Whether upstream failures without an answer (refused, TLS, reset) are recorded (never, in an enclave). */
  readonly recordUpstreamFailures: boolean;
}

export function createEnclaveConfig(init: { oracle: string; listen: string; upstreamProxy: string; upstreamCaPem?: readonly string[] }): EnclaveConfig {
  return {
    v: 1,
    type: ENCLAVE_CONFIG_TYPE,
    oracle: init.oracle,
    listen: init.listen,
    upstreamProxy: init.upstreamProxy,
    upstreamCaSha256: (init.upstreamCaPem ?? []).map((pem) => createHash('sha256').update(pem).digest('hex')).sort(),
    recordUpstreamFailures: false,
  };
}

/** The configuration as a DAG-CBOR block; `user_data` is the SHA-256 of its bytes (= its CID's digest). */
export function encodeEnclaveConfig(config: EnclaveConfig): Promise<EncodedBlock> {
  return encodeCborBlock({ ...config, upstreamCaSha256: [...config.upstreamCaSha256] });
}

/** A raw block (CIDv1, raw, sha2-256) of the attestation document's exact bytes. */
export async function attestationBlock(document: Uint8Array): Promise<EncodedBlock> {
  return { cid: CID.createV1(RAW_CODE, await sha256.digest(document)), bytes: document };
}

/** Signs with the enclave-born key; `attestation` is the CID every record it signs carries. */
export class AttestedSigner implements Signer {
  readonly publicKey: Uint8Array;
  readonly attestation: CID;
  readonly #key: SigningKey;

  constructor(publicKey: Uint8Array, key: KeyObject, attestation: CID) {
    this.publicKey = publicKey;
    this.#key = SigningKey.fromKeyObject(key);
    this.attestation = attestation;
  }

  sign(record: CID): Promise<SignedRecord> {
    return Promise.resolve(this.#key.sign(record));
  }
}

export interface BirthKeyOptions extends AbortOptions {
  nsm: NsmClient;
  config: EnclaveConfig;
  /**
   * Local entropy mixed into the seed beside the NSM's, so that a weak source alone cannot weaken the key.
   * @default 32 bytes of crypto.randomBytes (tests pass fixed bytes to show the key follows the NSM's randomness)
   */
  localEntropy?: Uint8Array;
}

export interface BornKey {
  signer: AttestedSigner;
  /** The attestation document as a raw block: put it in the store before signing anything. */
  document: EncodedBlock;
  /** The configuration block whose SHA-256 is the document's `user_data`. */
  config: EncodedBlock;
}

/** NSM_SEED_BYTES from the NSM (it may return fewer per call). */
async function nsmRandom(nsm: NsmClient, options: AbortOptions): Promise<Uint8Array> {
  const out = new Uint8Array(NSM_SEED_BYTES);
  let filled = 0;
  for (let calls = 0; filled < NSM_SEED_BYTES; calls++) {
    if (calls >= 16) throw new NsmError(`NSM GetRandom gave only ${filled} of ${NSM_SEED_BYTES} bytes in 16 calls`);
    const chunk = await nsm.getRandom(options);
    const n = Math.min(chunk.byteLength, NSM_SEED_BYTES - filled);
    out.set(chunk.subarray(0, n), filled);
    filled += n;
  }
  return out;
}

/** seed = SHA-256(ENCLAVE_SEED_PREFIX ‖ NSM random (32) ‖ local entropy). */
export function deriveSeed(nsmBytes: Uint8Array, localEntropy: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(ENCLAVE_SEED_PREFIX).update(nsmBytes).update(localEntropy).digest());
}

/**
 * Creates the oracle key from NSM randomness and has the NSM attest it. The private key exists only as a
 * KeyObject in this process (never written anywhere); seed buffers are zeroed once the key object exists.
 * The returned document is checked to bind exactly this key and configuration digest (a broken helper must
 * not leave the oracle signing under someone else's document).
 */
export async function birthKey(options: BirthKeyOptions): Promise<BornKey> {
  throwIfAborted(options.signal);
  const fromNsm = await nsmRandom(options.nsm, options);
  const local = options.localEntropy ?? randomBytes(32);
  const seed = deriveSeed(fromNsm, local);
  const key = privateKeyOfSeed(seed);
  const publicKey = rawPublicKey(key);
  seed.fill(0);
  fromNsm.fill(0);

  const config = await encodeEnclaveConfig(options.config);
  const userData = config.cid.multihash.digest;
  const bytes = await options.nsm.attest({ publicKey, userData }, options);
  const doc = decodeAttestation(bytes);
  if (doc.publicKey === undefined || !equalBytes(doc.publicKey, publicKey)) {
    throw new NsmError(`NSM attestation document binds public_key ${doc.publicKey === undefined ? 'null' : toHex(doc.publicKey)}, not the oracle key ${toHex(publicKey)}`);
  }
  if (doc.userData === undefined || !equalBytes(doc.userData, userData)) {
    throw new NsmError(`NSM attestation document carries user_data ${doc.userData === undefined ? 'null' : toHex(doc.userData)}, not the configuration digest ${toHex(userData)}`);
  }
  const document = await attestationBlock(bytes);
  return { signer: new AttestedSigner(publicKey, key, document.cid), document, config };
}

/**
 * Throws unless the kernel's active hardware RNG is the NSM's (`nsm-hwrng`): Node's own randomness (the
 * local entropy above, TLS) comes from the kernel pool, which this source feeds.
 */
export async function checkRngSource(path = RNG_CURRENT_PATH, options: AbortOptions = {}): Promise<void> {
  let current: string;
  try {
    current = (await readFile(path, { encoding: 'utf8', ...(options.signal === undefined ? {} : { signal: options.signal }) })).trim();
  } catch (cause) {
    throw new NsmError(`Cannot read ${path} to check the RNG source: ${(cause as Error).message}`, { cause });
  }
  if (current !== 'nsm-hwrng') throw new NsmError(`The kernel's hardware RNG is ${JSON.stringify(current)}, not nsm-hwrng (${path})`);
}
