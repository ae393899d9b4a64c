import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * `build --scrub PROFILE,…`: paths of the image that RUN steps fill with logs and caches whose bytes differ
 * from one run to the next (timestamps, inode numbers, hash-table layouts) although the build's inputs are
 * the same. Each path is bind-mounted from an empty scratch directory on the host into every RUN step, so
 * what a step writes there never enters a layer, while the Dockerfile stays as it is. What the base image
 * already holds at those paths is left alone (a mount only hides it while a step runs). docs/reproducible-builds.md
 * has the measurements behind each entry.
 */
export const SCRUB_PROFILES: Readonly<Record<string, readonly ScrubMount[]>> = {
  // dpkg.log, apt/history.log, apt/term.log and alternatives.log carry wall-clock times of each run.
  logs: [{ target: '/var/log', subdirs: ['apt'] }],
  // pkgcache.bin/srcpkgcache.bin are mmap'ed hash tables that differ per run; archives/ holds downloaded .debs.
  apt: [{ target: '/var/cache/apt', subdirs: ['archives/partial'] }],
  // aux-cache records inode numbers and ctimes of the libraries ldconfig scanned.
  ldconfig: [{ target: '/var/cache/ldconfig', subdirs: [] }],
  // npm's content cache and its _logs (timestamped debug logs).
  npm: [{ target: '/root/.npm', subdirs: [] }],
  // pip's HTTP and wheel cache.
  pip: [{ target: '/root/.cache/pip', subdirs: [] }],
};

export interface ScrubMount {
  /** The path inside the image. */
  target: string;
  /** Directories created in the scratch directory first (tools that expect them to exist). */
  subdirs: readonly string[];
}

/** `debian` = what a Debian/Ubuntu `apt-get install` step needs; `all` = every profile. */
const ALIASES: Readonly<Record<string, readonly string[]>> = {
  debian: ['logs', 'apt', 'ldconfig'],
  all: Object.keys(SCRUB_PROFILES),
};

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

/**
 * Creates one empty scratch directory per mount under `dir` and returns the buildah `--volume` arguments
 * that mount them. A fresh `dir` per build gives both halves of `--check` the same (empty) starting state.
 */
export async function scrubVolumes(profiles: readonly string[], dir: string): Promise<string[]> {
  const args: string[] = [];
  for (const name of profiles) {
    for (const m of SCRUB_PROFILES[name] ?? []) {
      const host = join(dir, name, m.target.replace(/^\//, '').replace(/\//g, '_'));
      await mkdir(host, { recursive: true, mode: 0o755 });
      for (const s of m.subdirs) await mkdir(join(host, s), { recursive: true, mode: 0o755 });
      args.push('--volume', `${host}:${m.target}:rw`);
    }
  }
  return args;
}

/** The profiles whose paths cover any of `paths` (for the hint after a failed --check). */
export function scrubProfilesFor(paths: readonly string[]): string[] {
  return Object.entries(SCRUB_PROFILES)
    .filter(([, mounts]) => mounts.some((m) => paths.some((p) => p === m.target || p.startsWith(`${m.target}/`))))
    .map(([name]) => name);
}
