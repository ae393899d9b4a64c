import type { PackedEntries } from './packed-entries.ts';

/**
 * What a lockfile parser produces for `fetch-oracle seed`: the requests a package manager will make, each
 * with the digests its lockfile promises. Parsers are pure (text in, plan out); resolving steps that need
 * the network (a PEP 503 index page, a cargo registry's config) are `SeedResolver`s the seeder runs.
 */

/** A whole-body digest a lockfile promises. `sha1` comes from old npm/yarn entries. */
export interface BodyDigest {
  algorithm: 'sha1' | 'sha256' | 'sha512';
  /** Lower-case hex. */
  hex: string;
}

/** Go's `h1:` dirhash (golang.org/x/mod/sumdb/dirhash Hash1): of a module zip's files, or of a go.mod alone. */
export interface GoDirHash {
  algorithm: 'go-h1';
  /** `zip`: the module zip, every file under MODULE@VERSION/; `mod`: the .mod file hashed as `go.mod`. */
  over: 'zip' | 'mod';
  /** As written in go.sum: `h1:` + base64 of the sha256. */
  value: string;
}

export type Expectation = BodyDigest | GoDirHash;

/** Where an entry came from, for messages: `package-lock.json:42 (node_modules/left-pad)`. */
export interface EntrySource {
  file: string;
  line: number;
  /** The lockfile's name for the entry (package@version, file name, URL). */
  name: string;
}

/** One request to seed. */
export interface SeedEntry {
  source: EntrySource;
  /** Absolute http(s) URL, exactly as the client will request it (userinfo allowed: used for the fetch, never stored). */
  url: string;
  /** The Accept header the client sends for it (absent is the same as `*\/*` in the key). */
  accept: string;
  /**
   * Digests the body must match. SRI semantics for several of one kind: any one matching suffices; across
   * kinds only the strongest hash kind counts (sha512 > sha256 > sha1), plus every go-h1 value.
   * Empty: recorded without a check (an index document, or an entry the lockfile gave no digest for).
   */
  expect: Expectation[];
  /** Entries the lockfile promises a digest for but did not give one are warned about (or refused with --strict). */
  missingDigest?: boolean;
  /** Statuses besides 200 that are recorded as the answer (pip's extra indexes may 404 a project). */
  acceptStatus?: number[];
}

/** A lockfile entry that cannot be seeded as it stands (no resolved URL, a git or file source…). */
export interface SeedWarning {
  source: EntrySource;
  message: string;
  /** True when --strict refuses it (missing URL or integrity), false for an informational note. */
  strict: boolean;
}

/** What a resolver may do: fetch (and record) a document the client will also fetch, and read its body. */
export interface ResolveContext {
  /** Records `entry` (as the client will request it) and returns its body, decoded, capped in size. */
  fetchDocument(entry: SeedEntry): Promise<{ status: number; text: string; contentType: string }>;
  signal: AbortSignal;
}

/** A step that turns lockfile entries into seed entries with the help of the network (index pages, registry config). */
export interface SeedResolver {
  source: EntrySource;
  /** Shown in progress and errors. */
  label: string;
  resolve(ctx: ResolveContext): Promise<{ entries: SeedEntry[]; warnings: SeedWarning[] }>;
}

export interface SeedPlan {
  /** An npm lockfile's entries are packed (they can be hundreds of thousands); other kinds' are an array. */
  entries: readonly SeedEntry[] | PackedEntries;
  resolvers: SeedResolver[];
  warnings: SeedWarning[];
}

/** Options the parsers need (registries to use for entries that do not name a URL). */
export interface ParseOptions {
  /** npm registry for pnpm entries without a tarball URL. @default https://registry.npmjs.org */
  npmRegistry?: string;
  /** PEP 503 index for requirements without `--index-url`. @default https://pypi.org/simple/ */
  pipIndex?: string;
  /** Sparse index that replaces crates.io (cargo source replacement). @default https://index.crates.io/ */
  cargoIndex?: string;
  /** Go module proxy. @default https://proxy.golang.org */
  goProxy?: string;
  /** Base URL for SHA256SUMS names that are not URLs. */
  baseUrl?: string;
  /** Reads an included file (requirements `-r other.txt`), relative to the including file. */
  readInclude?: (path: string) => string;
}

export const KINDS = ['urls', 'npm', 'yarn', 'pnpm', 'requirements', 'uv', 'cargo', 'gosum', 'sha256sums', 'dockerfile'] as const;
export type SeedKind = (typeof KINDS)[number];
