import { readFile } from 'node:fs/promises';
import { isAbsolute, join } from 'node:path';
import { CA_VARIABLES } from '../tls/client-env.ts';

/**
 * Build arguments `build` fills in with the CA path when the Dockerfile declares them with `ARG NAME` and the
 * command line does not set them. buildah hands RUN steps only the proxy variables on its own (the predefined
 * ARGs); every other variable reaches a RUN step only through a declared ARG. (SOURCE_DATE_EPOCH reaches every
 * RUN step through the derived Dockerfile instead: derive.ts.)
 */
export const AUTO_BUILD_ARGS = CA_VARIABLES;

/** One `-f/--file` option among the buildah options: where its value is and what it says. */
export interface FileOption {
  /** Index of the argument holding the value (`-f X`: X's index; `--file=X`: the option's own). */
  index: number;
  /** The text before the value in that argument (`--file=` or ''). */
  prefix: string;
  value: string;
}

/** Every `-f/--file` option among the buildah options (buildah reads them all, in order). */
export function fileOptions(buildahArgs: readonly string[]): FileOption[] {
  const out: FileOption[] = [];
  for (let i = 0; i < buildahArgs.length; i++) {
    const m = /^(-f|--file)(=(.*))?$/.exec(buildahArgs[i]!);
    if (m === null) continue;
    if (m[2] !== undefined) out.push({ index: i, prefix: `${m[1]!}=`, value: m[3]! });
    else if (i + 1 < buildahArgs.length) out.push({ index: ++i, prefix: '', value: buildahArgs[i]! });
  }
  return out;
}

/** Where a `-f` value may be: as given (relative to the working directory), else relative to CONTEXT, as buildah looks. */
export function fileCandidates(value: string, context: string): string[] {
  if (value === '-' || /^https?:\/\//.test(value)) return [];
  return isAbsolute(value) ? [value] : [join(process.cwd(), value), join(context, value)];
}

/** The Dockerfile buildah will read first: `-f/--file` among the buildah options, else CONTEXT/Containerfile or CONTEXT/Dockerfile. */
export function dockerfileCandidates(buildahArgs: readonly string[], context: string): string[] {
  const files = fileOptions(buildahArgs);
  if (files.length > 0) return fileCandidates(files[0]!.value, context);
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
