import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cleanEnv } from '../helpers/client-session.ts';
import { fetchOracleRun } from '../helpers/fetch-oracle-run.ts';
import { run, tempDir } from '../helpers/run.ts';
import { seedCli } from '../seed/seed-helpers.ts';

/**
 * Live: lockfiles made by the real clients against the real registries (npm, PyPI, crates.io, the Go module
 * proxy), seeded, then each client run offline in `unshare -n` against `run --replay`. CI does not depend on
 * the public network: set FETCH_ORACLE_LIVE=1 to run it.
 */
describe.skipIf(process.env['FETCH_ORACLE_LIVE'] !== '1')('live: seed from real registries, install offline (FETCH_ORACLE_LIVE=1)', () => {
  interface Case {
    name: string;
    /** Writes the project and its lockfile (online, with the real client); returns the lockfile path. */
    lock: (work: string, env: NodeJS.ProcessEnv) => Promise<string>;
    /** The offline build command, run in a fresh copy made by `project`. */
    project: (work: string, lockText: string) => Promise<void>;
    command: (work: string) => string[];
    env?: (work: string) => NodeJS.ProcessEnv;
    check: (work: string) => Promise<void>;
  }

  const must = async (cmd: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Promise<void> => {
    const r = await run(cmd, args, { ...options, timeoutMs: 240_000 });
    expect(r.code, `${cmd} ${args.join(' ')}: ${r.stderr}`).toBe(0);
  };

  // rustup needs the toolchain named when HOME is private: use the binary it would run.
  let cargoPath = 'cargo';
  let rustcPath = 'rustc';
  const cargoBin = async (): Promise<string> => {
    const r = await run('rustup', ['which', 'cargo']);
    cargoPath = r.code === 0 ? r.stdout.trim() : 'cargo';
    const c = await run('rustup', ['which', 'rustc']);
    rustcPath = c.code === 0 ? c.stdout.trim() : 'rustc';
    return cargoPath;
  };

  const cases: Case[] = [
    {
      name: 'npm',
      lock: async (w, env) => {
        await writeFile(join(w, 'package.json'), JSON.stringify({ name: 'live', version: '1.0.0', dependencies: { 'is-number': '7.0.0' } }));
        await must('npm', ['install', '--package-lock-only', '--no-audit', '--no-fund', '--cache', join(w, 'c')], { cwd: w, env });
        return join(w, 'package-lock.json');
      },
      project: async (w, lock) => {
        await writeFile(join(w, 'package.json'), JSON.stringify({ name: 'live', version: '1.0.0', dependencies: { 'is-number': '7.0.0' } }));
        await writeFile(join(w, 'package-lock.json'), lock);
      },
      command: (w) => ['npm', 'ci', '--no-audit', '--no-fund', '--cache', join(w, '.npm-cache')],
      // npm's update check asks the registry about npm itself: not part of the build.
      env: () => ({ npm_config_update_notifier: 'false' }),
      check: async (w) => expect(await readFile(join(w, 'node_modules', 'is-number', 'package.json'), 'utf8')).toContain('"version": "7.0.0"'),
    },
    {
      name: 'pip',
      lock: async (w) => {
        // six 1.16.0's wheel and sdist, as `pip hash` / pip-compile --generate-hashes write them.
        const text = 'six==1.16.0 \\\n    --hash=sha256:1e61c37477a1626458e36f7b1d82aa5c9b094fa4802892072e49de9c60c4c926 \\\n    --hash=sha256:8abb2f1d86890a2dfb989f9a77cfcfd3e47c2a354b01111771326f8aa26e0254\n';
        await writeFile(join(w, 'requirements.txt'), text);
        return join(w, 'requirements.txt');
      },
      project: (w, lock) => writeFile(join(w, 'requirements.txt'), lock),
      command: (w) => ['python3', '-m', 'pip', 'install', '--no-deps', '--require-hashes', '--no-cache-dir', '--only-binary', ':all:', '--target', join(w, 'site'), '-r', join(w, 'requirements.txt')],
      env: () => ({ PIP_CONFIG_FILE: '/dev/null', PIP_DISABLE_PIP_VERSION_CHECK: '1', PIP_NO_INPUT: '1' }),
      check: async (w) => expect(await readFile(join(w, 'site', 'six.py'), 'utf8')).toContain('__version__ = "1.16.0"'),
    },
    {
      name: 'cargo',
      lock: async (w, env) => {
        await mkdir(join(w, 'src'), { recursive: true });
        await writeFile(join(w, 'Cargo.toml'), '[package]\nname = "live"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\ncfg-if = "=1.0.0"\n');
        await writeFile(join(w, 'src', 'main.rs'), 'fn main() {}\n');
        await must(await cargoBin(), ['generate-lockfile'], { cwd: w, env: { ...env, CARGO_HOME: join(w, 'cargo-home'), RUSTC: rustcPath } });
        return join(w, 'Cargo.lock');
      },
      project: async (w, lock) => {
        await mkdir(join(w, 'src'), { recursive: true });
        await writeFile(join(w, 'Cargo.toml'), '[package]\nname = "live"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\ncfg-if = "=1.0.0"\n');
        await writeFile(join(w, 'src', 'main.rs'), 'fn main() {}\n');
        await writeFile(join(w, 'Cargo.lock'), lock);
      },
      command: (w) => [cargoPath, 'fetch', '--locked', '--manifest-path', join(w, 'Cargo.toml')],
      env: (w) => ({ CARGO_HOME: join(w, 'cargo-home'), CARGO_NET_RETRY: '0', RUSTC: rustcPath }),
      check: async (w) => expect((await run('ls', ['-R', join(w, 'cargo-home', 'registry', 'cache')])).stdout).toContain('cfg-if-1.0.0.crate'),
    },
    {
      name: 'go',
      lock: async (w, env) => {
        await writeFile(join(w, 'go.mod'), 'module example.com/live\n\ngo 1.21\n\nrequire golang.org/x/mod v0.17.0\n');
        await writeFile(join(w, 'main.go'), 'package main\n\nimport "golang.org/x/mod/semver"\n\nfunc main() { println(semver.IsValid("v1.0.0")) }\n');
        await must('go', ['mod', 'tidy'], { cwd: w, env: { ...env, GOFLAGS: '-mod=mod', GOTOOLCHAIN: 'local', GOPATH: join(w, 'gopath'), GOMODCACHE: join(w, 'gomodcache'), GOCACHE: join(w, 'gocache') } });
        return join(w, 'go.sum');
      },
      project: async (w, lock) => {
        await writeFile(join(w, 'go.mod'), 'module example.com/live\n\ngo 1.21\n\nrequire golang.org/x/mod v0.17.0\n');
        await writeFile(join(w, 'main.go'), 'package main\n\nimport "golang.org/x/mod/semver"\n\nfunc main() { println(semver.IsValid("v1.0.0")) }\n');
        await writeFile(join(w, 'go.sum'), lock);
      },
      // A real build: `go mod download all` would also ask for modules go.sum does not pin (test-only deps).
      command: (w) => ['sh', '-c', `cd '${w}' && go build -o live . && ./live`],
      env: (w) => ({ GOPROXY: 'https://proxy.golang.org', GOFLAGS: '-mod=mod', GOSUMDB: 'off', GOTOOLCHAIN: 'local', GOPATH: join(w, 'gopath'), GOMODCACHE: join(w, 'gomodcache'), GOCACHE: join(w, 'gocache') }),
      check: async (w) => expect((await run('ls', [join(w, 'gomodcache', 'golang.org', 'x')])).stdout).toContain('mod@v0.17.0'),
    },
  ];

  for (const c of cases) {
    it(`${c.name}: a lockfile from the real registry seeds, then installs offline`, async () => {
      const dir = await tempDir(`fo-live-seed-${c.name}-`);
      try {
        const data = join(dir.path, 'data');
        const lockDir = join(dir.path, 'lock');
        await mkdir(join(lockDir, 'home'), { recursive: true });
        const lockPath = await c.lock(lockDir, cleanEnv(join(lockDir, 'home')));
        const netlock = join(dir.path, 'live.netlock.json');
        const seeded = await seedCli(['--netlock', netlock, lockPath], { data });
        expect(seeded.code, seeded.stderr).toBe(0);
        const work = join(dir.path, 'replay');
        await mkdir(join(work, 'home'), { recursive: true });
        await c.project(work, await readFile(lockPath, 'utf8'));
        const report = join(dir.path, 'report.json');
        const r = await fetchOracleRun(['--replay', netlock, '--data', data, '--report', report, '--', ...c.command(work)], { env: { ...cleanEnv(join(work, 'home')), ...(c.env?.(work) ?? {}) }, cwd: work, timeoutMs: 240_000 });
        expect(r.code, `${r.stdout}\n${r.stderr}`).toBe(0);
        expect((JSON.parse(await readFile(report, 'utf8')) as { misses: unknown[] }).misses).toEqual([]);
        await c.check(work);
      } finally {
        await dir.remove();
      }
    }, 600_000);
  }
});
