/**
 * `verify --attested`: a record is accepted only when its signer key is the `public_key` of a valid Nitro
 * attestation document (design §8) that the record names by CID (`attestation`), whose PCRs match the
 * expected image, and (optionally) whose `user_data` is the expected enclave configuration digest.
 *
 * Each document is verified once per netlock with src/attestation (COSE_Sign1 ES384, chain to the pinned
 * root as of the document's own timestamp, debug rejection, PCR policy): an archived netlock stays
 * verifiable after the 3-hour leaf certificate has expired.
 */
import { createHash, X509Certificate } from 'node:crypto';
import type { CID } from 'multiformats/cid';
import { AttestationError, verifyAttestation } from '../attestation/index.ts';
import type { AttestationDocument, VerifyAttestationOptions } from '../attestation/index.ts';
import { InvalidConfigError, NotAttestedError } from '../errors.ts';
import type { AbortOptions, BlockSource } from '../protocol/blocks.ts';
import { equalBytes, RAW_CODE, verifyingSource } from '../protocol/blocks.ts';
import type { FetchRecord } from '../protocol/record.ts';
import { toHex } from '../protocol/signature.ts';

export interface AttestationPolicy {
  /** PCR index → expected 48-byte value. Must name PCR0 (the image): an empty policy would accept any image. */
  readonly expectedPcrs: Readonly<Record<number, Uint8Array>>;
  /** Accept debug-mode documents (PCR0/1/2 zero). Tests only. @default false */
  readonly allowDebug?: boolean;
  /** Trusted root (PEM) instead of the bundled AWS Nitro root G1: for tests with a simulated NSM. */
  readonly rootCertPem?: string;
  /** Expected `user_data` (the enclave configuration digest). @default not checked (reported only) */
  readonly expectedUserData?: Uint8Array;
}

/** What `verify --attested` reports per attestation document. */
export interface AttestationSummary {
  cid: string;
  moduleId: string;
  timestamp: string;
  publicKey: string;
  userData: string | null;
  pcr0: string;
  pcr1: string;
  pcr2: string;
  records: number;
}

/** verifyAttestation options for a policy; `rootCertPem` is pinned by its own DER fingerprint (the caller named it). */
export function attestationOptions(policy: AttestationPolicy): VerifyAttestationOptions {
  if (policy.expectedPcrs[0] === undefined) throw new InvalidConfigError('An attestation policy must name PCR0 (--pcr0 HEX): without it any enclave image would be accepted');
  const options: VerifyAttestationOptions = { expectedPcrs: { ...policy.expectedPcrs }, allowDebug: policy.allowDebug === true };
  if (policy.rootCertPem !== undefined) {
    let der: Buffer;
    try {
      // Parsed from the base64 body: one certificate, DER checked by X509Certificate.
      const m = /-----BEGIN CERTIFICATE-----([A-Za-z0-9+/=\s]+)-----END CERTIFICATE-----/.exec(policy.rootCertPem);
      if (m === null) throw new Error('no CERTIFICATE block');
      der = new X509Certificate(Buffer.from(m[1]!.replace(/\s+/g, ''), 'base64')).raw;
    } catch (cause) {
      throw new InvalidConfigError(`The attestation root is not a PEM certificate: ${(cause as Error).message}`, { cause });
    }
    options.rootCertPem = policy.rootCertPem;
    options.rootCertDerSha256 = createHash('sha256').update(der).digest('hex');
  }
  return options;
}

/** Checks records against attestation documents, verifying each document once. */
export class AttestationChecker {
  readonly #options: VerifyAttestationOptions;
  readonly #policy: AttestationPolicy;
  readonly #source: BlockSource;
  readonly #documents = new Map<string, Promise<AttestationDocument>>();
  readonly #summaries = new Map<string, AttestationSummary>();

  constructor(policy: AttestationPolicy, source: BlockSource) {
    this.#policy = policy;
    this.#options = attestationOptions(policy);
    this.#source = verifyingSource(source);
  }

  /** The documents that bound at least one accepted record. */
  summaries(): AttestationSummary[] {
    return [...this.#summaries.values()];
  }

  /** Throws NotAttestedError or AttestationError (naming the record and document) unless `record` is bound. */
  async check(record: FetchRecord, recordCid: CID, options: AbortOptions = {}): Promise<void> {
    const key = toHex(record.oracle);
    if (record.attestation === undefined) {
      throw new NotAttestedError(`Record ${recordCid} names no attestation document: its oracle key ${key} is not bound to an enclave image`);
    }
    const cid = record.attestation;
    if (cid.code !== RAW_CODE) throw new NotAttestedError(`Record ${recordCid} names attestation ${cid}, which is not a raw block (an attestation document is stored as its exact bytes)`);
    let doc: AttestationDocument;
    try {
      doc = await this.#document(cid, options);
    } catch (err) {
      if (err instanceof AttestationError) throw new AttestationError(err.code, `Attestation document ${cid} of record ${recordCid}: ${err.message}`, { cause: err });
      throw err;
    }
    if (doc.publicKey === undefined || !equalBytes(doc.publicKey, record.oracle)) {
      throw new NotAttestedError(`Attestation document ${cid} binds public_key ${doc.publicKey === undefined ? 'null' : toHex(doc.publicKey)}, not the oracle key ${key} that signed record ${recordCid}`);
    }
    const want = this.#policy.expectedUserData;
    if (want !== undefined && (doc.userData === undefined || !equalBytes(doc.userData, want))) {
      throw new NotAttestedError(`Attestation document ${cid} carries user_data ${doc.userData === undefined ? 'null' : toHex(doc.userData)}, expected the configuration digest ${toHex(want)}`);
    }
    const id = cid.toString();
    const summary = this.#summaries.get(id) ?? {
      cid: id,
      moduleId: doc.moduleId,
      timestamp: doc.timestamp.toISOString(),
      publicKey: toHex(doc.publicKey),
      userData: doc.userData === undefined ? null : toHex(doc.userData),
      pcr0: toHex(doc.pcrs.get(0)!),
      pcr1: toHex(doc.pcrs.get(1)!),
      pcr2: toHex(doc.pcrs.get(2)!),
      records: 0,
    };
    summary.records++;
    this.#summaries.set(id, summary);
  }

  #document(cid: CID, options: AbortOptions): Promise<AttestationDocument> {
    const id = cid.toString();
    let pending = this.#documents.get(id);
    if (pending === undefined) {
      pending = this.#source.get(cid, options).then((bytes) => verifyAttestation(bytes, this.#options));
      this.#documents.set(id, pending);
    }
    return pending;
  }
}
