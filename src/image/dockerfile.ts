import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { CA_VARIABLES } from '../tls/client-env.ts';

/**
 * Build arguments `build` fills in by itself when the Dockerfile declares them with `ARG NAME` and the
 * command line does not set them. buildah hands RUN steps only the proxy variables on its own (the predefined
 * ARGs); every other variable reaches a RUN step only through a declared ARG, so this is the one way to give
 * pip, npm or Python's byte-compiler what they need without editing the Dockerfile.
 */
export const AUTO_BUILD_ARGS = [...CA_VARIABLES, 'SOURCE_DATE_EPOCH'] as const;

/** The Dockerfile buildah will read: `-f/--file` among the buildah options, else CONTEXT/Containerfile or CONTEXT/Dockerfile. */
export function dockerfileCandidates(buildahArgs: readonly string[], context: string): string[] {
  for (let i = 0; i < buildahArgs.length; i++) {
    const a = buildahArgs[i]!;
    const m = /^(?:-f|--file)(?:=(.*))?$/.exec(a);
    if (m !== null) {
      const f = m[1] ?? buildahArgs[i + 1];
      if (f === undefined || f === '-') return [];
      return [isAbsolute(f) ? f : join(process.cwd(), f)];
    }
  }
  return [join(context, 'Containerfile'), join(context, 'Dockerfile')];
}

/**
 * Names declared with `ARG NAME` or `ARG NAME=default` (any stage), read best-effort: [] if unreadable.
 * Read by hand: one instruction, and a miss only means a build argument is not filled in.
 */
export async function declaredArgs(candidates: readonly string[]): Promise<Set<string>> {
  for (const file of candidates) {
    const text = await readFile(file, 'utf8').catch(() => undefined);
    if (text === undefined) continue;
    const names = new Set<string>();
    // Line continuations first, so `ARG A \` + `B` counts both.
    for (const line of text.replace(/\\\r?\n/g, ' ').split(/\r?\n/)) {
      const m = /^\s*ARG\s+(.+)$/i.exec(line);
      if (m === null) continue;
      for (const part of m[1]!.trim().split(/\s+/)) {
        const name = /^([A-Za-z_][A-Za-z0-9_]*)/.exec(part)?.[1];
        if (name !== undefined) names.add(name);
      }
    }
    return names;
  }
  return new Set();
}

/** Names the user set with `--build-arg NAME=…` / `--build-arg=NAME=…`. */
export function userBuildArgs(buildahArgs: readonly string[]): Set<string> {
  const names = new Set<string>();
  for (let i = 0; i < buildahArgs.length; i++) {
    const a = buildahArgs[i]!;
    const value = a === '--build-arg' ? buildahArgs[i + 1] : a.startsWith('--build-arg=') ? a.slice('--build-arg='.length) : undefined;
    if (value !== undefined) names.add(value.split('=')[0]!);
  }
  return names;
}
