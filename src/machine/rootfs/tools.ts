/**
 * The host programs `machine image` runs: where each is found, which Debian package provides it, and one way
 * to run them that captures their output and never leaves a child behind.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { AbortedError, ImageBuildError } from '../../errors.ts';
import type { AbortOptions } from '../../protocol/blocks.ts';

/** Where Debian's release keys are (package debian-archive-keyring); apt checks InRelease against them. */
export const DEBIAN_KEYRING = '/usr/share/keyrings/debian-archive-keyring.gpg';

/** Each program, the package to install for it, and why the image needs it. */
const TOOLS = {
  aptGet: { program: 'apt-get', pkg: 'apt', why: 'resolves and downloads the riscv64 packages' },
  dpkgDeb: { program: 'dpkg-deb', pkg: 'dpkg', why: 'reads the packages' },
  tar: { program: 'tar', pkg: 'tar', why: 'unpacks them' },
  mke2fs: { program: 'mke2fs', pkg: 'e2fsprogs', why: 'writes the ext2 image' },
  qemu: { program: 'qemu-riscv64-static', pkg: 'qemu-user-static', why: "runs the riscv64 busybox to list its applets" },
  unshare: { program: 'unshare', pkg: 'util-linux', why: 'maps this user to root, so the image is owned by root (not needed when run as root)' },
} as const;

export type ImageTools = { readonly [K in keyof typeof TOOLS]: string };

/** Searched after PATH: a user's PATH often lacks them, and mke2fs lives there. */
export const SBIN_DIRS = ['/usr/sbin', '/sbin'] as const;

function findProgram(program: string, dirs: readonly string[]): string | undefined {
  for (const dir of dirs) {
    try {
      accessSync(join(dir, program), constants.X_OK);
      return join(dir, program);
    } catch {
      // not here
    }
  }
  return undefined;
}

/** Whether this process runs as root (then nothing needs a user namespace to own files as root). */
export function runsAsRoot(): boolean {
  return process.getuid?.() === 0;
}

/**
 * Finds every program the build needs, or throws one ImageBuildError naming all that are missing and the
 * Debian packages to install (so a user fixes the host in one step, not one error at a time).
 */
export function findImageTools(options: { env?: NodeJS.ProcessEnv; extraDirs?: readonly string[]; keyring?: string } = {}): ImageTools {
  const path = (options.env ?? process.env)['PATH'] ?? '';
  const dirs = [...path.split(delimiter).filter((d) => d !== ''), ...(options.extraDirs ?? SBIN_DIRS)];
  const keyring = options.keyring ?? DEBIAN_KEYRING;
  const found: Partial<Record<keyof typeof TOOLS, string>> = {};
  const missing: string[] = [];
  const packages = new Set<string>();
  for (const [key, tool] of Object.entries(TOOLS) as Array<[keyof typeof TOOLS, (typeof TOOLS)[keyof typeof TOOLS]]>) {
    const path = findProgram(tool.program, dirs);
    if (path !== undefined) found[key] = path;
    else if (key !== 'unshare' || !runsAsRoot()) {
      missing.push(`${tool.program} (${tool.why}; Debian package ${tool.pkg})`);
      packages.add(tool.pkg);
    }
  }
  try {
    accessSync(keyring, constants.R_OK);
  } catch {
    missing.push(`${keyring} (the Debian archive keys apt checks the mirror's signature with; Debian package debian-archive-keyring)`);
    packages.add('debian-archive-keyring');
  }
  if (missing.length > 0) {
    throw new ImageBuildError(
      `machine image needs programs this host lacks (looked on PATH, /usr/sbin and /sbin):\n  ${missing.join('\n  ')}\nInstall them (Debian/Ubuntu: sudo apt-get install ${[...packages].join(' ')}) and try again.`,
    );
  }
  return { ...found, unshare: found.unshare ?? 'unshare' } as ImageTools;
}

export interface ToolRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** At most this much of a tool's stdout/stderr is kept (apt's progress can be long; errors come last). */
const MAX_CAPTURE_BYTES = 4 * 1024 * 1024;

function keepTail(chunks: Buffer[], size: { n: number }, chunk: Buffer): void {
  chunks.push(chunk);
  size.n += chunk.byteLength;
  while (size.n > MAX_CAPTURE_BYTES && chunks.length > 1) size.n -= chunks.shift()!.byteLength;
}

/**
 * Kills `child` and everything it started: tools run in their own process group (`detached`), because
 * dpkg-deb and apt fork helpers that would otherwise outlive a killed parent, blocked on a pipe nobody reads.
 */
export function killGroup(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {
    child.kill('SIGKILL');
  }
}

/** Runs `argv` to completion with `env`, capturing its output; an abort kills it (and its helpers) and rejects with AbortedError. */
export function runTool(argv: readonly string[], options: AbortOptions & { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<ToolRun> {
  const [file, ...args] = argv;
  if (file === undefined) return Promise.reject(new Error('runTool: empty argv'));
  if (options.signal?.aborted === true) return Promise.reject(new AbortedError());
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env: options.env ?? process.env, ...(options.cwd === undefined ? {} : { cwd: options.cwd }) });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    const outSize = { n: 0 };
    const errSize = { n: 0 };
    child.stdout.on('data', (d: Buffer) => keepTail(out, outSize, d));
    child.stderr.on('data', (d: Buffer) => keepTail(err, errSize, d));
    const onAbort = (): void => killGroup(child);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    child.once('error', (e) => {
      options.signal?.removeEventListener('abort', onAbort);
      reject(new ImageBuildError(`cannot run ${file}: ${e.message}`, { cause: e }));
    });
    child.once('close', (code, signal) => {
      options.signal?.removeEventListener('abort', onAbort);
      if (options.signal?.aborted === true) return reject(new AbortedError());
      resolve({ code: code ?? 128 + (signal === null ? 0 : 9), stdout: Buffer.concat(out).toString('utf8'), stderr: Buffer.concat(err).toString('utf8') });
    });
  });
}

/** The last `lines` non-empty lines of a tool's output, indented, for an error message. */
export function lastLines(text: string, lines = 12): string {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .slice(-lines)
    .map((l) => `  ${l}`)
    .join('\n');
}

/** Runs `argv`; a non-zero exit is an ImageBuildError naming `step` and quoting the tool's last lines. */
export async function runStep(step: string, argv: readonly string[], options: AbortOptions & { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<ToolRun> {
  const r = await runTool(argv, options);
  if (r.code !== 0) throw new ImageBuildError(`${step} failed (exit ${r.code}):\n${lastLines(`${r.stdout}\n${r.stderr}`)}`);
  return r;
}

/**
 * The argv that runs `argv` as root over the files this user owns: itself when we are root; otherwise inside
 * a user namespace that maps this user to root (`unshare --map-root-user`), so dpkg-deb extracts with the
 * packages' modes and mke2fs records every file as owned by 0:0, the same image either way.
 */
export function asRoot(tools: ImageTools, argv: readonly string[]): string[] {
  return runsAsRoot() ? [...argv] : [tools.unshare, '--map-root-user', '--', ...argv];
}
