/**
 * `.intoto.jsonl` files: one DSSE envelope per line (the in-toto attestation bundle convention,
 * `spec/v1/bundle.md`), written atomically; and their verification against trusted keys, a netlock and files.
 */
import { randomBytes } from 'node:crypto';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import type { CID } from 'multiformats/cid';
import { InvalidProvenanceError } from '../errors.ts';
import { NETLOCK_VERSION } from '../netlock/dag.ts';
import type { AbortOptions, BlockSource } from '../protocol/blocks.ts';
import { IN_TOTO_PAYLOAD_TYPE, parseEnvelope, verifyEnvelope } from '../protocol/dsse.ts';
import type { DsseEnvelope } from '../protocol/dsse.ts';
import { assertStatementMatchesNetlock, assertSubjectDigest, buildProvenanceStatement, encodeStatement, parseProvenanceStatement } from '../protocol/provenance.ts';
import type { ProvenanceInvocation, ProvenanceStatement, ResourceDescriptor } from '../protocol/provenance.ts';
import { readNetlockForProvenance } from './netlock-entries.ts';
import { fileSubjects } from './subjects.ts';

/** The oracle version a statement names as its builder's (package.json's). */
export const PROVENANCE_BUILDER_VERSION = '0.1.0';

/** What signs a statement: the oracle's key (LocalSigner). */
export interface EnvelopeSigner {
  readonly publicKey: Uint8Array;
  signEnvelope(payloadType: string, payload: Uint8Array): DsseEnvelope;
}

export interface WriteProvenanceInit extends AbortOptions {
  root: CID;
  store: BlockSource;
  subjects: readonly ResourceDescriptor[];
  signer: EnvelopeSigner;
  invocation: ProvenanceInvocation;
  out: string;
}

/** Builds the statement for the netlock under `root`, signs it and writes it as a one-line `.intoto.jsonl`. */
export async function writeProvenance(init: WriteProvenanceInit): Promise<{ statement: ProvenanceStatement; envelope: DsseEnvelope }> {
  const netlock = await readNetlockForProvenance(init.root, init.store, undefined, init);
  if (netlock.rootValue.v !== NETLOCK_VERSION) throw new InvalidProvenanceError(`Netlock ${init.root} is version ${netlock.rootValue.v} (expected ${NETLOCK_VERSION})`);
  const statement = buildProvenanceStatement({
    netlock: init.root,
    keyVersion: netlock.rootValue.keyVersion,
    ...(netlock.rootValue.variantRules === undefined ? {} : { variantRules: netlock.rootValue.variantRules }),
    oracles: netlock.rootValue.oracles,
    entries: netlock.entries,
    subjects: init.subjects,
    builderVersion: PROVENANCE_BUILDER_VERSION,
    invocation: init.invocation,
  });
  const envelope = init.signer.signEnvelope(IN_TOTO_PAYLOAD_TYPE, encodeStatement(statement));
  await writeAtomically(init.out, `${JSON.stringify(envelope)}\n`);
  return { statement, envelope };
}

async function writeAtomically(path: string, text: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, text);
    await rename(tmp, path);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
}

export interface VerifyProvenanceOptions extends AbortOptions {
  trusted: readonly Uint8Array[];
  /** With a store: the statement must list exactly this netlock's dependencies. */
  netlock?: { root: CID; store: BlockSource };
  /** Files or directories (as named on the command line) whose files' sha256 must be the statement's subjects of the same names. */
  subjects?: readonly string[];
  cwd: string;
}

export interface VerifiedProvenance {
  /** 1-based line of the `.intoto.jsonl` file. */
  line: number;
  keyid: string;
  statement: ProvenanceStatement;
}

/**
 * Verifies every envelope of a `.intoto.jsonl` file: payload type, a trusted key's signature over the PAE, the
 * statement's shape, and with `netlock`/`subjects` the match with the netlock and the files. The first failure
 * throws (InvalidProvenanceError, BadSignatureError, UntrustedKeyError, SubjectMismatchError), naming the line.
 */
export async function verifyProvenanceFile(path: string, options: VerifyProvenanceOptions): Promise<VerifiedProvenance[]> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (cause) {
    throw new InvalidProvenanceError(`Cannot read provenance ${path}: ${(cause as Error).message}`, { cause });
  }
  const lines = text.split('\n').map((l, i) => ({ l: l.trim(), n: i + 1 })).filter(({ l }) => l !== '');
  if (lines.length === 0) throw new InvalidProvenanceError(`Provenance ${path} holds no envelope`);
  const netlock = options.netlock === undefined ? undefined : await readNetlockForProvenance(options.netlock.root, options.netlock.store, undefined, options);
  const digests = new Map<string, string>();
  for (const s of await fileSubjects(options.subjects ?? [], options.cwd, options)) digests.set(s.name!, s.digest['sha256']!);
  const out: VerifiedProvenance[] = [];
  for (const { l, n } of lines) {
    try {
      const envelope = parseEnvelope(l);
      const verified = verifyEnvelope(envelope, options.trusted);
      const statement = parseProvenanceStatement(verified.payload);
      if (netlock !== undefined) assertStatementMatchesNetlock(statement, netlock.root, netlock.entries);
      for (const [name, sha256] of digests) assertSubjectDigest(statement, name, sha256);
      out.push({ line: n, keyid: Buffer.from(verified.publicKey).toString('hex'), statement });
    } catch (err) {
      if (err instanceof Error) err.message = `${path}:${n}: ${err.message}`;
      throw err;
    }
  }
  return out;
}
