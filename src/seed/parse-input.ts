import { basename } from 'node:path';
import { InvalidLockfileError } from '../errors.ts';
import { parseCargoLock } from './parse-cargo-lock.ts';
import { parseDockerfile } from './parse-dockerfile.ts';
import { parseGoSum } from './parse-go-sum.ts';
import { parseNpmLock } from './parse-npm-lock.ts';
import { parsePnpmLock } from './parse-pnpm-lock.ts';
import { parseRequirements } from './parse-requirements.ts';
import { parseSha256Sums } from './parse-sha256sums.ts';
import { parseUrlList } from './parse-url-list.ts';
import { parseUvLock } from './parse-uv-lock.ts';
import { parseYarnLock } from './parse-yarn-lock.ts';
import { KINDS } from './types.ts';
import type { ParseOptions, SeedKind, SeedPlan } from './types.ts';

/**
 * The kind of an input: by its file name first (the names package managers write), then by its content
 * (a URL list, checksum lines, a lockfile's telltale first lines). Undefined when neither tells.
 */
export function detectKind(path: string, text: string): SeedKind | undefined {
  const byName = kindFromName(path);
  if (byName !== undefined) return byName;
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length === 0) return undefined;
  if (lines.every((l) => /^https?:\/\//i.test(l))) return 'urls';
  if (lines.every((l) => /^[0-9a-fA-F]{40,128}\s+\S/.test(l) || /^SHA(1|256|512)\s*\(/i.test(l))) return 'sha256sums';
  if (/^\s*\{/.test(text) && /"lockfileVersion"/.test(text)) return 'npm';
  if (/^# yarn lockfile v1/m.test(text)) return 'yarn';
  if (/^lockfileVersion:/m.test(text)) return 'pnpm';
  if (lines.every((l) => /^\S+ v\d\S* h1:/.test(l))) return 'gosum';
  if (lines.some((l) => /--hash[= ]sha256:/.test(l))) return 'requirements';
  if (/^\s*FROM\s+\S/im.test(text) && /^\s*ADD\s/im.test(text)) return 'dockerfile';
  return undefined;
}

/** The kind an input's file name says (the names package managers write), or undefined. */
export function kindFromName(path: string): SeedKind | undefined {
  const name = basename(path).toLowerCase();
  if (name === 'package-lock.json' || name === 'npm-shrinkwrap.json') return 'npm';
  if (name === 'yarn.lock') return 'yarn';
  if (name === 'pnpm-lock.yaml') return 'pnpm';
  if (name === 'uv.lock') return 'uv';
  if (name === 'cargo.lock') return 'cargo';
  if (name === 'go.sum') return 'gosum';
  if (/^(dockerfile|containerfile)(\..*)?$/.test(name) || name.endsWith('.dockerfile')) return 'dockerfile';
  if (/sums$/.test(name) || /\.(sha256|sha512)$/.test(name)) return 'sha256sums';
  if (/^requirements.*\.(txt|in)$/.test(name)) return 'requirements';
  return undefined;
}

export function isKind(text: string): text is SeedKind {
  return (KINDS as readonly string[]).includes(text);
}

/** Parses one input of `kind` (or of its detected kind) into a seed plan. */
export function parseInput(path: string, text: string, kind: SeedKind | undefined, options: ParseOptions = {}): { kind: SeedKind; plan: SeedPlan } {
  const k = kind ?? detectKind(path, text);
  if (k === undefined) throw new InvalidLockfileError(path, 0, `cannot tell what kind of input this is; name it with --kind (${KINDS.join(', ')})`);
  switch (k) {
    case 'urls':
      return { kind: k, plan: parseUrlList(text, path) };
    case 'npm':
      return { kind: k, plan: parseNpmLock(text, path) };
    case 'yarn':
      return { kind: k, plan: parseYarnLock(text, path) };
    case 'pnpm':
      return { kind: k, plan: parsePnpmLock(text, path, options.npmRegistry) };
    case 'requirements':
      return { kind: k, plan: parseRequirements(text, path, options) };
    case 'uv':
      return { kind: k, plan: parseUvLock(text, path) };
    case 'cargo':
      return { kind: k, plan: parseCargoLock(text, path, options.cargoIndex) };
    case 'gosum':
      return { kind: k, plan: parseGoSum(text, path, options.goProxy) };
    case 'sha256sums':
      return { kind: k, plan: parseSha256Sums(text, path, options.baseUrl) };
    case 'dockerfile':
      return { kind: k, plan: parseDockerfile(text, path) };
  }
}
