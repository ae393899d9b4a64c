import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StageVariable } from './derive.ts';

/**
 * `build --scrub PROFILE,…`: logs and caches that RUN steps leave in the image whose bytes differ from one run
 * to the next (timestamps, inode numbers, hash-table layouts, hash-map order) although the build's inputs are
 * the same. Each path is bind-mounted from an empty scratch directory (or file) on the host into every RUN
 * step, so what a step writes there never enters a layer, while the Dockerfile stays as it is; a cache a tool
 * can be told not to write is switched off with a variable every RUN step sees (see derive.ts). What the base
 * image already holds at those paths is left alone (a mount only hides it while a step runs).
 * docs/reproducible-builds.md has the measurements behind each entry.
 */
export interface ScrubProfile {
  mounts: readonly ScrubMount[];
  /** Variables given to every RUN step (a derived Dockerfile declares them). */
  variables?: readonly StageVariable[];
}

export interface ScrubMount {
  /** The path inside the image. */
  target: string;
  /** `file`: an empty file is mounted (a tool's database next to things that must stay, e.g. ~/.cargo/bin). */
  kind?: 'dir' | 'file';
  /** Directories created in the scratch directory first (tools that expect them to exist). */
  subdirs?: readonly string[];
}

export const SCRUB_PROFILES: Readonly<Record<string, ScrubProfile>> = {
  // dpkg.log, apt/history.log, apt/term.log and alternatives.log carry wall-clock times of each run.
  logs: { mounts: [{ target: '/var/log', subdirs: ['apt'] }] },
  // pkgcache.bin/srcpkgcache.bin are mmap'ed hash tables that differ per run; archives/ holds downloaded .debs.
  apt: { mounts: [{ target: '/var/cache/apt', subdirs: ['archives/partial'] }] },
  // aux-cache records inode numbers and ctimes of the libraries ldconfig scanned.
  ldconfig: { mounts: [{ target: '/var/cache/ldconfig' }] },
  // npm's content cache (_cacache: index entries carry the fetch time) and _logs (timestamped debug logs).
  npm: { mounts: [{ target: '/root/.npm' }] },
  // pip's HTTP and wheel cache, and its self-check state (a timestamp).
  pip: { mounts: [{ target: '/root/.cache/pip' }] },
  // Go's build cache: its action entries (-a files) and trim.txt carry times; the module cache does not differ.
  go: { mounts: [{ target: '/root/.cache/go-build' }] },
  // cargo's .global-cache (an SQLite database of last-use times) sits in ~/.cargo next to bin/ (cargo install),
  // so only the file is mounted; target/.rustc_info.json is a cache whose JSON follows a randomly seeded
  // hash map's order, which CARGO_CACHE_RUSTC_INFO=0 tells cargo not to write.
  cargo: { mounts: [{ target: '/root/.cargo/.global-cache', kind: 'file' }], variables: [{ name: 'CARGO_CACHE_RUSTC_INFO', value: '0' }] },
};

/** `debian` = what a Debian/Ubuntu `apt-get install` step needs; `all` = every profile. */
const ALIASES: Readonly<Record<string, readonly string[]>> = {
  debian: ['logs', 'apt', 'ldconfig'],
  all: Object.keys(SCRUB_PROFILES),
};

/** The profile names and aliases, for help texts. */
export function scrubNames(): string {
  return `${Object.keys(SCRUB_PROFILES).join(', ')}; debian = ${ALIASES['debian']!.join(',')}; all`;
}

/** Parses `--scrub` values (comma-separated, repeatable) into profile names, in a stable order. */
export function parseScrub(values: readonly string[]): string[] {
  const names = new Set<string>();
  for (const v of values.flatMap((x) => x.split(',')).map((x) => x.trim()).filter((x) => x !== '')) {
    if (v === 'none') continue;
    const expanded = ALIASES[v] ?? (v in SCRUB_PROFILES ? [v] : undefined);
    if (expanded === undefined) throw new Error(`unknown --scrub profile ${JSON.stringify(v)} (known: ${[...Object.keys(SCRUB_PROFILES), ...Object.keys(ALIASES), 'none'].join(', ')})`);
    for (const n of expanded) names.add(n);
  }
  return Object.keys(SCRUB_PROFILES).filter((n) => names.has(n));
}

/** The variables the chosen profiles give every RUN step. */
export function scrubVariables(profiles: readonly string[]): StageVariable[] {
  return profiles.flatMap((name) => SCRUB_PROFILES[name]?.variables ?? []);
}

/**
 * Creates one empty scratch directory (or file) per mount under `dir` and returns the buildah `--volume`
 * arguments that mount them. A fresh `dir` per build gives both halves of `--check` the same (empty) start.
 */
export async function scrubVolumes(profiles: readonly string[], dir: string): Promise<string[]> {
  const args: string[] = [];
  for (const name of profiles) {
    for (const m of SCRUB_PROFILES[name]?.mounts ?? []) {
      const host = join(dir, name, m.target.replace(/^\//, '').replace(/\//g, '_'));
      if (m.kind === 'file') {
        await mkdir(join(dir, name), { recursive: true, mode: 0o755 });
        await writeFile(host, '', { mode: 0o644 });
      } else {
        await mkdir(host, { recursive: true, mode: 0o755 });
        for (const s of m.subdirs ?? []) await mkdir(join(host, s), { recursive: true, mode: 0o755 });
      }
      args.push('--volume', `${host}:${m.target}:rw`);
    }
  }
  return args;
}

/** The profiles whose paths cover `path`. */
export function scrubProfilesOf(path: string): string[] {
  return Object.entries(SCRUB_PROFILES)
    .filter(([, p]) => p.mounts.some((m) => path === m.target || path.startsWith(`${m.target}/`)))
    .map(([name]) => name);
}

/** The profiles whose paths cover any of `paths` (for the hint after a failed --check). */
export function scrubProfilesFor(paths: readonly string[]): string[] {
  const hit = new Set(paths.flatMap(scrubProfilesOf));
  return Object.keys(SCRUB_PROFILES).filter((n) => hit.has(n));
}
