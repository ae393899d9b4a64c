/**
 * SLSA Provenance v1 (slsa.dev/spec/v1.0/provenance) in an in-toto Statement v1 (github.com/in-toto/attestation,
 * `spec/v1/statement.md`): what a build that replayed a netlock consumed and produced. Pure: the caller reads the
 * netlock and hashes the outputs; this module builds and checks the statement. docs/provenance.md is its page.
 */
import type { CID } from 'multiformats/cid';
import { InvalidProvenanceError, SubjectMismatchError } from '../errors.ts';
import { SHA2_256_CODE } from './blocks.ts';
import type { FetchRecord } from './record.ts';
import { parseKeyId } from './request-key.ts';
import type { VariantRules } from './request-key.ts';
import { toHex } from './signature.ts';

export const STATEMENT_TYPE = 'https://in-toto.io/Statement/v1';
export const SLSA_PROVENANCE_TYPE = 'https://slsa.dev/provenance/v1';
/** This project's build type: what the parameters below mean (docs/provenance.md "Build type"). */
export const PROVENANCE_BUILD_TYPE = 'https://fetch-oracle.dev/provenance/netlock-replay/v1';
export const PROVENANCE_BUILDER_ID = 'https://fetch-oracle.dev/builder/v1';

/** An in-toto ResourceDescriptor (`spec/v1/resource_descriptor.md`), the fields this project writes. */
export interface ResourceDescriptor {
  readonly name?: string;
  readonly uri?: string;
  readonly digest: Readonly<Record<string, string>>;
  readonly mediaType?: string;
  readonly annotations?: Readonly<Record<string, unknown>>;
}

/** A ResourceDescriptor given by its bytes (`content`, base64) rather than a digest: a run's byproduct. */
export interface ContentDescriptor {
  readonly name: string;
  readonly content: string;
  readonly mediaType?: string;
}

/** One netlock entry as the statement needs it: its request key id, its record and the record's CID. */
export interface ProvenanceEntry {
  readonly key: string;
  readonly record: FetchRecord;
  readonly recordCid: CID;
}

/** What the build was (run, build, machine run, or an attestation made afterwards by `provenance`). */
export interface ProvenanceInvocation {
  readonly tool: string;
  /** The command the build ran (run, machine run), as given. */
  readonly command?: readonly string[];
  readonly startedOn?: string;
  readonly finishedOn?: string;
  /** Other things the run produced that are not subjects (machine run: the machine's root hash). */
  readonly byproducts?: readonly ContentDescriptor[];
}

export interface ProvenanceInit {
  readonly netlock: CID;
  readonly keyVersion: number;
  readonly variantRules?: VariantRules;
  /** The netlock's oracle keys (its root's list). */
  readonly oracles: readonly Uint8Array[];
  /** Every entry of the netlock, in its index (request key) order. */
  readonly entries: readonly ProvenanceEntry[];
  readonly subjects: readonly ResourceDescriptor[];
  readonly builderVersion: string;
  readonly invocation: ProvenanceInvocation;
}

export interface ProvenanceStatement {
  readonly _type: string;
  readonly subject: readonly ResourceDescriptor[];
  readonly predicateType: string;
  readonly predicate: {
    readonly buildDefinition: {
      readonly buildType: string;
      readonly externalParameters: Readonly<Record<string, unknown>>;
      readonly internalParameters?: Readonly<Record<string, unknown>>;
      readonly resolvedDependencies: readonly ResourceDescriptor[];
    };
    readonly runDetails: {
      readonly builder: { readonly id: string; readonly version?: Readonly<Record<string, string>> };
      readonly metadata?: Readonly<Record<string, unknown>>;
      readonly byproducts?: readonly ContentDescriptor[];
    };
  };
}

/**
 * The descriptor of the netlock root: `ipfs://ROOT`, and as `sha256` the root block's digest (the CID's
 * sha2-256 multihash digest), so a verifier without IPFS tooling can still pin the exact root block.
 */
export function netlockDescriptor(root: CID, count: number): ResourceDescriptor {
  if (root.multihash.code !== SHA2_256_CODE) throw new InvalidProvenanceError(`Netlock root ${root} is not a sha2-256 CID`);
  return { name: 'netlock', uri: `ipfs://${root}`, digest: { sha256: toHex(root.multihash.digest) }, mediaType: 'application/vnd.ipld.dag-cbor', annotations: { entries: count } };
}

/**
 * One resolved dependency per netlock entry: `uri` the URL, `digest` the body's sha256 and sha512 (what the
 * record signs), and as annotations the body CID, the signed record's CID, method, status, size, the
 * variant-selecting request headers (`accept` at least) and, for a request with a body, its digest. Two
 * entries with the same URL (HEAD and GET, two Accept variants, two POST bodies) differ in these annotations.
 */
export function dependencyOf(entry: ProvenanceEntry): ResourceDescriptor {
  const k = parseKeyId(entry.key);
  const r = entry.record.response;
  return {
    uri: k.url,
    digest: { sha256: toHex(r.sha256), sha512: toHex(r.sha512) },
    annotations: {
      method: k.method,
      status: r.status,
      size: r.size,
      cid: r.body?.toString() ?? null,
      record: entry.recordCid.toString(),
      variant: k.variant,
      ...(k.bodyDigest === '' ? {} : { requestBodyDigest: k.bodyDigest }),
    },
  };
}

/** The resolved dependencies a netlock makes: its root first, then every entry in key order. */
export function dependenciesOf(netlock: CID, entries: readonly ProvenanceEntry[]): ResourceDescriptor[] {
  return [netlockDescriptor(netlock, entries.length), ...entries.map(dependencyOf)];
}

/** Builds the statement. Deterministic: the same inputs give the same bytes (timestamps only when given). */
export function buildProvenanceStatement(init: ProvenanceInit): ProvenanceStatement {
  if (init.subjects.length === 0) throw new InvalidProvenanceError('A provenance statement needs at least one subject (an output file or an image ID)');
  for (const s of init.subjects) assertDescriptor(s, 'subject');
  const root = init.netlock.toString();
  const inv = init.invocation;
  const metadata = {
    ...(inv.startedOn === undefined ? {} : { startedOn: inv.startedOn }),
    ...(inv.finishedOn === undefined ? {} : { finishedOn: inv.finishedOn }),
  };
  return {
    _type: STATEMENT_TYPE,
    subject: init.subjects,
    predicateType: SLSA_PROVENANCE_TYPE,
    predicate: {
      buildDefinition: {
        buildType: PROVENANCE_BUILD_TYPE,
        externalParameters: { netlock: root, tool: inv.tool, ...(inv.command === undefined ? {} : { command: inv.command }) },
        internalParameters: {
          // Replay is fail-closed (design §5): the build could reach nothing but the netlock's records, so the
          // resolved dependencies below are all of its network input.
          network: { netlock: root, replay: 'fail-closed', dependenciesComplete: true, entries: init.entries.length },
          keyVersion: init.keyVersion,
          oracles: init.oracles.map(toHex),
          ...(init.variantRules === undefined ? {} : { variantRules: init.variantRules }),
        },
        resolvedDependencies: dependenciesOf(init.netlock, init.entries),
      },
      runDetails: {
        builder: { id: PROVENANCE_BUILDER_ID, version: { 'fetch-oracle': init.builderVersion } },
        ...(Object.keys(metadata).length === 0 ? {} : { metadata }),
        ...(inv.byproducts === undefined ? {} : { byproducts: inv.byproducts }),
      },
    },
  };
}

/** The statement's bytes: compact JSON, the payload a DSSE envelope signs. */
export function encodeStatement(statement: ProvenanceStatement): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(statement));
}

const HEX64 = /^[0-9a-f]{64}$/;

function assertDescriptor(d: unknown, what: string): asserts d is ResourceDescriptor {
  if (typeof d !== 'object' || d === null) throw new InvalidProvenanceError(`${what} is not an object`);
  const digest = (d as { digest?: unknown }).digest;
  if (typeof digest !== 'object' || digest === null || Object.keys(digest).length === 0) throw new InvalidProvenanceError(`${what} has no digest`);
  const sha = (digest as Record<string, unknown>)['sha256'];
  if (sha !== undefined && (typeof sha !== 'string' || !HEX64.test(sha))) throw new InvalidProvenanceError(`${what} has a sha256 that is not 64 lower-case hex digits`);
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Parses a signed payload as this project's provenance: an in-toto Statement v1 with a SLSA v1 predicate of
 * PROVENANCE_BUILD_TYPE naming a netlock. Throws InvalidProvenanceError naming the first field that is not so.
 */
export function parseProvenanceStatement(payload: Uint8Array): ProvenanceStatement {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(payload));
  } catch (cause) {
    throw new InvalidProvenanceError(`Statement is not UTF-8 JSON: ${(cause as Error).message}`, { cause });
  }
  if (!isObject(v)) throw new InvalidProvenanceError('Statement is not a JSON object');
  if (v['_type'] !== STATEMENT_TYPE) throw new InvalidProvenanceError(`Statement _type is ${JSON.stringify(v['_type'])} (expected ${STATEMENT_TYPE})`);
  if (v['predicateType'] !== SLSA_PROVENANCE_TYPE) throw new InvalidProvenanceError(`Statement predicateType is ${JSON.stringify(v['predicateType'])} (expected ${SLSA_PROVENANCE_TYPE})`);
  const subject = v['subject'];
  if (!Array.isArray(subject) || subject.length === 0) throw new InvalidProvenanceError('Statement has no subject');
  subject.forEach((s, i) => assertDescriptor(s, `Subject ${i}`));
  const pred = v['predicate'];
  const bd = isObject(pred) ? pred['buildDefinition'] : undefined;
  if (!isObject(bd)) throw new InvalidProvenanceError('Statement has no predicate.buildDefinition');
  if (bd['buildType'] !== PROVENANCE_BUILD_TYPE) throw new InvalidProvenanceError(`buildType is ${JSON.stringify(bd['buildType'])} (expected ${PROVENANCE_BUILD_TYPE})`);
  const ext = bd['externalParameters'];
  if (!isObject(ext) || typeof ext['netlock'] !== 'string') throw new InvalidProvenanceError('externalParameters.netlock (the netlock root CID) is missing');
  const deps = bd['resolvedDependencies'];
  if (!Array.isArray(deps)) throw new InvalidProvenanceError('buildDefinition.resolvedDependencies is missing');
  deps.forEach((d, i) => assertDescriptor(d, `resolvedDependencies[${i}]`));
  if (!isObject(pred) || !isObject(pred['runDetails'])) throw new InvalidProvenanceError('Statement has no predicate.runDetails');
  return v as unknown as ProvenanceStatement;
}

/**
 * Checks that the statement names `netlock` and lists exactly the dependencies it makes (`dependenciesOf`), in
 * order; throws InvalidProvenanceError naming the root or the first dependency that differs.
 */
export function assertStatementMatchesNetlock(statement: ProvenanceStatement, netlock: CID, entries: readonly ProvenanceEntry[]): void {
  const named = statement.predicate.buildDefinition.externalParameters['netlock'];
  if (named !== netlock.toString()) throw new InvalidProvenanceError(`Statement names netlock ${String(named)}, not ${netlock}`);
  const want = dependenciesOf(netlock, entries);
  const got = statement.predicate.buildDefinition.resolvedDependencies;
  for (let i = 0; i < Math.max(want.length, got.length); i++) {
    const w = want[i];
    const g = got[i];
    if (w === undefined) throw new InvalidProvenanceError(`Statement lists a dependency the netlock does not hold: ${g?.uri ?? g?.name}`);
    if (g === undefined) throw new InvalidProvenanceError(`Statement leaves out ${w.uri ?? w.name}, which the netlock holds (${want.length - 1} entries, statement ${got.length - 1})`);
    if (canonicalJson(w) !== canonicalJson(g)) throw new InvalidProvenanceError(`Statement's dependency ${i} (${g.uri ?? g.name}) differs from the netlock's (${w.uri ?? w.name}): ${canonicalJson(g).slice(0, 300)}`);
  }
}

/** Checks that a subject named `name` has sha256 `sha256Hex`; throws SubjectMismatchError otherwise. */
export function assertSubjectDigest(statement: ProvenanceStatement, name: string, sha256Hex: string): void {
  const named = statement.subject.filter((s) => s.name === name);
  if (named.length === 0) {
    throw new SubjectMismatchError(`No subject of the statement is named ${JSON.stringify(name)} (subjects: ${statement.subject.map((s) => s.name ?? '(unnamed)').join(', ')})`);
  }
  if (!named.some((s) => s.digest['sha256'] === sha256Hex)) {
    throw new SubjectMismatchError(`${name} has sha256 ${sha256Hex}, but the statement's subject of that name has ${named.map((s) => s.digest['sha256'] ?? '(none)').join(', ')}`);
  }
}

/** JSON with object keys sorted, for comparing descriptors regardless of key order. */
export function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (isObject(v)) return `{${Object.keys(v).sort().filter((k) => v[k] !== undefined).map((k) => `${JSON.stringify(k)}:${canonicalJson(v[k])}`).join(',')}}`;
  return JSON.stringify(v);
}
