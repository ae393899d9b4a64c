import { randomBytes } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { CID } from 'multiformats/cid';
import { InvalidConfigError } from '../errors.ts';
import { signEnvelope } from '../protocol/dsse.ts';
import type { DsseEnvelope } from '../protocol/dsse.ts';
import { countersignatureSigningMessage } from '../protocol/countersignature.ts';
import type { SignedCountersignature } from '../protocol/countersignature.ts';
import { privateKeyOfSeed, publicKeyOfSeed, rawPublicKey, toHex } from '../protocol/signature.ts';
import type { SignedRecord } from '../protocol/signature.ts';
import { SigningKey } from './signing-key.ts';
import type { SigningBackend } from './signing-key.ts';
import type { Signer } from './signer.ts';

export const KEY_FILE = 'oracle-key.json';

/** ed25519 signer whose 32-byte seed lives in `<dir>/oracle-key.json`, mode 0600, created on first use. */
export class LocalSigner implements Signer {
  readonly publicKey: Uint8Array;
  readonly #secretKey: KeyObject;
  readonly #signingKey: SigningKey;

  private constructor(seed: Uint8Array) {
    this.#secretKey = privateKeyOfSeed(seed);
    this.publicKey = rawPublicKey(this.#secretKey);
    this.#signingKey = SigningKey.fromKeyObject(this.#secretKey);
  }

  /** What signs its records (`signing-key.ts`). */
  get backend(): SigningBackend {
    return this.#signingKey.backend;
  }

  static fromSeed(seed: Uint8Array): LocalSigner {
    return new LocalSigner(seed);
  }

  static async loadOrCreate(dir: string): Promise<LocalSigner> {
    const path = join(dir, KEY_FILE);
    let text: string | undefined;
    try {
      text = await readFile(path, 'utf8');
    } catch (cause) {
      if ((cause as NodeJS.ErrnoException).code !== 'ENOENT') throw new InvalidConfigError(`Cannot read oracle key ${path}: ${(cause as Error).message}`);
    }
    if (text !== undefined) return LocalSigner.#parse(text, path);
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const seed = randomBytes(32);
    const signer = new LocalSigner(seed);
    const tmp = `${path}.${process.pid}.tmp`;
    await writeFile(tmp, `${JSON.stringify({ seed: seed.toString('hex'), publicKey: toHex(signer.publicKey) })}\n`, { mode: 0o600 });
    await chmod(tmp, 0o600);
    await rename(tmp, path);
    return signer;
  }

  /** Loads an existing key file (never creates one: a signature by a fresh key would vouch for nothing). */
  static async load(path: string): Promise<LocalSigner> {
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (cause) {
      throw new InvalidConfigError(`Cannot read oracle key ${path}: ${(cause as Error).message}`, { cause });
    }
    return LocalSigner.#parse(text, path);
  }

  static #parse(text: string, path: string): LocalSigner {
    return new LocalSigner(LocalSigner.#seed(text, path));
  }

  static #seed(text: string, path: string): Uint8Array {
    let seedHex: unknown;
    try {
      seedHex = (JSON.parse(text) as { seed?: unknown }).seed;
    } catch {
      seedHex = undefined;
    }
    if (typeof seedHex !== 'string' || !/^[0-9a-f]{64}$/.test(seedHex)) {
      throw new InvalidConfigError(`Oracle key file ${path} is corrupt (expected {"seed": <64 hex chars>}); restore it from a backup or move it away to create a new key`);
    }
    return Buffer.from(seedHex, 'hex');
  }

  /**
   * Reads only the public key of an existing key file, or undefined when there is none (or it is corrupt).
   * Derived by Node's crypto, without the signer: a replay trusts its own key but never signs, and the signer
   * loads libsodium (~30 ms of a replay's ~350 ms start here).
   */
  static async publicKeyIn(dir: string): Promise<Uint8Array | undefined> {
    const path = join(dir, KEY_FILE);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch {
      return undefined;
    }
    try {
      return publicKeyOfSeed(LocalSigner.#seed(text, path));
    } catch {
      return undefined;
    }
  }

  /** A DSSE envelope of `payload` signed with this key (provenance; see src/protocol/dsse.ts). */
  signEnvelope(payloadType: string, payload: Uint8Array): DsseEnvelope {
    return signEnvelope(payloadType, payload, this.#secretKey, this.publicKey);
  }

  sign(record: CID): Promise<SignedRecord> {
    return Promise.resolve(this.#signingKey.sign(record));
  }

  /** Signs a countersignature block's CID (a witness's statement; its own domain-separation prefix). */
  countersign(countersignature: CID): SignedCountersignature {
    return { countersignature, signature: this.#signingKey.signMessage(countersignatureSigningMessage(countersignature)) };
  }
}
