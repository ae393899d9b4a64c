/**
 * "Bring your own PKI" Nitro attestation documents for tests: a throw-away P-384 chain shaped like AWS's
 * (root → regional → zonal → instance → leaf) and COSE_Sign1 documents in the real byte layout
 * (untagged, protected a1 01 38 22, nine payload keys with nulls, indefinite-length map by default).
 */
import 'reflect-metadata';
import { createHash, webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;

const subtle = webcrypto.subtle;
const ES384 = { name: 'ECDSA', hash: 'SHA-384' } as const;
const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** Document time of the synthetic PKI (the indefinite-length era). */
export const T0 = new Date('2025-07-21T12:00:00.123Z');

// ---------------------------------------------------------------------------------------------------------
// Minimal CBOR encoder that keeps map order and can write indefinite-length maps/arrays and duplicate keys.

/** Wraps a Map or array to encode it with indefinite length. */
export class Indefinite {
  readonly value: Map<unknown, unknown> | unknown[];
  constructor(value: Map<unknown, unknown> | unknown[]) {
    this.value = value;
  }
}

/** A map given as an entry list (allows duplicate keys). */
export class Entries {
  readonly entries: [unknown, unknown][];
  constructor(entries: [unknown, unknown][]) {
    this.entries = entries;
  }
}

function head(major: number, n: number | bigint): number[] {
  const m = major << 5;
  const v = BigInt(n);
  if (v < 24n) return [m | Number(v)];
  if (v < 0x100n) return [m | 24, Number(v)];
  if (v < 0x10000n) return [m | 25, Number(v >> 8n), Number(v & 0xffn)];
  if (v < 0x100000000n) return [m | 26, ...[24n, 16n, 8n, 0n].map((s) => Number((v >> s) & 0xffn))];
  return [m | 27, ...[56n, 48n, 40n, 32n, 24n, 16n, 8n, 0n].map((s) => Number((v >> s) & 0xffn))];
}

export function cbor(value: unknown): Uint8Array {
  const out: number[] = [];
  const write = (v: unknown): void => {
    if (v === null) out.push(0xf6);
    else if (typeof v === 'number' || typeof v === 'bigint') {
      if (typeof v === 'number' && !Number.isInteger(v)) throw new Error('floats not supported');
      const b = BigInt(v);
      if (b >= 0n) out.push(...head(0, b));
      else out.push(...head(1, -1n - b));
    } else if (typeof v === 'string') {
      const bytes = Buffer.from(v, 'utf8');
      out.push(...head(3, bytes.length), ...bytes);
    } else if (v instanceof Uint8Array) {
      out.push(...head(2, v.length));
      for (const b of v) out.push(b);
    } else if (Array.isArray(v)) {
      out.push(...head(4, v.length));
      v.forEach(write);
    } else if (v instanceof Map) {
      out.push(...head(5, v.size));
      for (const [k, x] of v) {
        write(k);
        write(x);
      }
    } else if (v instanceof Entries) {
      out.push(...head(5, v.entries.length));
      for (const [k, x] of v.entries) {
        write(k);
        write(x);
      }
    } else if (v instanceof Indefinite) {
      if (Array.isArray(v.value)) {
        out.push(0x9f);
        v.value.forEach(write);
      } else {
        out.push(0xbf);
        for (const [k, x] of v.value) {
          write(k);
          write(x);
        }
      }
      out.push(0xff);
    } else throw new Error(`cannot encode ${typeof v}`);
  };
  write(value);
  return Uint8Array.from(out);
}

// ---------------------------------------------------------------------------------------------------------
// PKI

export type CertRole = 'root' | 'regional' | 'zonal' | 'instance' | 'leaf';

export interface CertSpec {
  ca: boolean | undefined; // undefined: no basicConstraints extension
  pathLength?: number;
  bcCritical: boolean;
  keyUsage: number | undefined; // undefined: no keyUsage extension
  notBefore: Date;
  notAfter: Date;
  curve: 'P-384' | 'P-256';
  subject: string;
}

export interface Pki {
  rootPem: string;
  rootSha256: string;
  /** cabundle as AWS ships it: root-first. */
  cabundle: Uint8Array[];
  leaf: Uint8Array;
  leafKey: CryptoKey;
  spec: Record<CertRole, CertSpec>;
  /** verifyAttestation options that trust this PKI's root. */
  trust: { rootCertPem: string; rootCertDerSha256: string };
}

const KU = x509.KeyUsageFlags;

function defaultSpecs(): Record<CertRole, CertSpec> {
  const t = T0.getTime();
  return {
    root: { ca: true, bcCritical: true, keyUsage: KU.digitalSignature | KU.keyCertSign | KU.cRLSign, notBefore: new Date('2020-01-01T00:00:00Z'), notAfter: new Date('2050-01-01T00:00:00Z'), curve: 'P-384', subject: 'C=US, O=Test, OU=Synthetic, CN=test.nitro-enclaves' },
    regional: { ca: true, pathLength: 2, bcCritical: true, keyUsage: KU.digitalSignature | KU.keyCertSign | KU.cRLSign, notBefore: new Date(t - 5 * DAY), notAfter: new Date(t + 15 * DAY), curve: 'P-384', subject: 'C=US, O=Test, OU=Synthetic, CN=0123456789abcdef.us-east-1.test.nitro-enclaves' },
    zonal: { ca: true, pathLength: 1, bcCritical: true, keyUsage: KU.digitalSignature | KU.keyCertSign | KU.cRLSign, notBefore: new Date(t - 2 * DAY), notAfter: new Date(t + 3 * DAY), curve: 'P-384', subject: 'C=US, O=Test, OU=Synthetic, CN=fedcba9876543210.zonal.us-east-1.test.nitro-enclaves' },
    instance: { ca: true, pathLength: 0, bcCritical: true, keyUsage: KU.keyCertSign, notBefore: new Date(t - 6 * HOUR), notAfter: new Date(t + 18 * HOUR), curve: 'P-384', subject: 'C=US, O=Test, OU=Synthetic, CN=i-0123456789abcdef0.us-east-1.test.nitro-enclaves' },
    leaf: { ca: false, bcCritical: true, keyUsage: KU.digitalSignature | KU.nonRepudiation, notBefore: new Date(Math.floor((t - HOUR) / 1000) * 1000), notAfter: new Date(Math.floor((t + 2 * HOUR) / 1000) * 1000), curve: 'P-384', subject: 'C=US, O=Test, OU=Synthetic, CN=i-0123456789abcdef0-enc0123456789abcdef.us-east-1.test' },
  };
}

async function keyPair(curve: 'P-384' | 'P-256'): Promise<CryptoKeyPair> {
  return subtle.generateKey({ name: 'ECDSA', namedCurve: curve }, true, ['sign', 'verify']);
}

async function issue(spec: CertSpec, serial: string, keys: CryptoKeyPair, issuerName: string, issuerKey: CryptoKey): Promise<Uint8Array> {
  const extensions: x509.Extension[] = [];
  if (spec.ca !== undefined) extensions.push(new x509.BasicConstraintsExtension(spec.ca, spec.pathLength, spec.bcCritical));
  if (spec.keyUsage !== undefined) extensions.push(new x509.KeyUsagesExtension(spec.keyUsage, spec.ca === true));
  extensions.push(await x509.SubjectKeyIdentifierExtension.create(keys.publicKey));
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: serial,
    subject: spec.subject,
    issuer: issuerName,
    notBefore: spec.notBefore,
    notAfter: spec.notAfter,
    signingAlgorithm: ES384,
    publicKey: keys.publicKey,
    signingKey: issuerKey,
    extensions,
  });
  return new Uint8Array(cert.rawData);
}

export async function createPki(overrides: Partial<Record<CertRole, Partial<CertSpec>>> = {}): Promise<Pki> {
  const base = defaultSpecs();
  const spec = Object.fromEntries(
    (Object.keys(base) as CertRole[]).map((role) => [role, { ...base[role], ...(overrides[role] ?? {}) }]),
  ) as Record<CertRole, CertSpec>;
  const roles: CertRole[] = ['root', 'regional', 'zonal', 'instance', 'leaf'];
  const keys = new Map<CertRole, CryptoKeyPair>();
  for (const role of roles) keys.set(role, await keyPair(spec[role].curve));
  const ders = new Map<CertRole, Uint8Array>();
  for (let i = 0; i < roles.length; i++) {
    const role = roles[i] as CertRole;
    const issuer = (i === 0 ? role : roles[i - 1]) as CertRole;
    ders.set(role, await issue(spec[role], `0${i + 1}`, keys.get(role) as CryptoKeyPair, spec[issuer].subject, (keys.get(issuer) as CryptoKeyPair).privateKey));
  }
  const root = ders.get('root') as Uint8Array;
  const rootPem = `-----BEGIN CERTIFICATE-----\n${Buffer.from(root).toString('base64').replace(/(.{64})/g, '$1\n')}\n-----END CERTIFICATE-----\n`;
  const rootSha256 = createHash('sha256').update(root).digest('hex');
  return {
    rootPem,
    rootSha256,
    cabundle: [root, ders.get('regional') as Uint8Array, ders.get('zonal') as Uint8Array, ders.get('instance') as Uint8Array],
    leaf: ders.get('leaf') as Uint8Array,
    leafKey: (keys.get('leaf') as CryptoKeyPair).privateKey,
    spec,
    trust: { rootCertPem: rootPem, rootCertDerSha256: rootSha256 },
  };
}

/** A self-signed certificate with the given subject (a root look-alike), DER. */
export async function selfSigned(subject: string): Promise<Uint8Array> {
  const keys = await keyPair('P-384');
  const spec: CertSpec = { ...defaultSpecs().root, subject };
  return issue(spec, '7f', keys, subject, keys.privateKey);
}

export async function generateSigningKey(): Promise<CryptoKey> {
  return (await keyPair('P-384')).privateKey;
}

// ---------------------------------------------------------------------------------------------------------
// Documents

export const PROTECTED_ES384 = Uint8Array.from([0xa1, 0x01, 0x38, 0x22]);

export function pcrValue(fill: number): Uint8Array {
  return new Uint8Array(48).fill(fill);
}

/** Sixteen PCRs like a production enclave: 0,1,2,4 non-zero, the rest zero. */
export function defaultPcrs(): Map<number, Uint8Array> {
  const pcrs = new Map<number, Uint8Array>();
  for (let i = 0; i < 16; i++) pcrs.set(i, pcrValue(i <= 2 ? 0x10 + i : i === 4 ? 0x44 : 0));
  return pcrs;
}

export interface DocumentOptions {
  /** Payload map entries in order; default = the nine AWS keys built from the PKI. Use `fields` to patch. */
  fields?: Record<string, unknown>;
  /** Keys to drop from the payload. */
  omit?: string[];
  /** Indefinite-length top-level payload map (AWS 2025+). Default true. */
  indefinite?: boolean;
  /** Replace the whole payload bytes (signed as given). */
  payloadBytes?: Uint8Array;
  protectedBytes?: Uint8Array;
  unprotected?: unknown;
  /** Key that signs the Sig_structure; default the leaf key. */
  signingKey?: CryptoKey;
  /** external_aad to put in the Sig_structure (real: h''). */
  externalAad?: unknown;
  /** Post-process the 96-byte signature. */
  mapSignature?: (sig: Uint8Array) => Uint8Array;
  tag18?: boolean;
  cabundle?: Uint8Array[];
  certificate?: Uint8Array;
}

export function payloadMap(pki: Pki, options: DocumentOptions = {}): Map<string, unknown> {
  const map = new Map<string, unknown>([
    ['module_id', 'i-0123456789abcdef0-enc0123456789abcdef'],
    ['digest', 'SHA384'],
    ['timestamp', T0.getTime()],
    ['pcrs', defaultPcrs()],
    ['certificate', options.certificate ?? pki.leaf],
    ['cabundle', options.cabundle ?? pki.cabundle],
    ['public_key', new Uint8Array(32).fill(0xab)],
    ['user_data', new Uint8Array(32).fill(0xcd)],
    ['nonce', null],
  ]);
  for (const [k, v] of Object.entries(options.fields ?? {})) map.set(k, v);
  for (const k of options.omit ?? []) map.delete(k);
  return map;
}

export async function makeDocument(pki: Pki, options: DocumentOptions = {}): Promise<Uint8Array> {
  const map = payloadMap(pki, options);
  const payload = options.payloadBytes ?? cbor(options.indefinite === false ? map : new Indefinite(map));
  const prot = options.protectedBytes ?? PROTECTED_ES384;
  const tbs = cbor(['Signature1', prot, options.externalAad ?? new Uint8Array(0), payload]);
  let signature: Uint8Array = new Uint8Array(await subtle.sign(ES384, options.signingKey ?? pki.leafKey, tbs));
  if (options.mapSignature) signature = options.mapSignature(signature);
  const envelope = cbor([prot, options.unprotected ?? new Map(), payload, signature]);
  return options.tag18 === true ? Uint8Array.from([0xd2, ...envelope]) : envelope;
}


