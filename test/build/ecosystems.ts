import { copyFile, link, mkdir, readFile, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { expect } from 'vitest';
import { explainRun } from '../helpers/debian-base.ts';
import { CLI, run } from '../helpers/run.ts';
import type { RunResult } from '../helpers/run.ts';

/**
 * One everyday Dockerfile per ecosystem, the same for the local registries (test/build/ecosystems.test.ts)
 * and the real ones (ecosystems-live.test.ts). Nothing in them knows about fetch-oracle: no proxy, no CA, no
 * SOURCE_DATE_EPOCH, no cleanup of logs or caches. The toolchain is Debian's, installed from the Debian
 * mirror in the first RUN; where the packages come from is the project's business (requirements.txt names
 * its index, package-lock.json its tarballs, app/.cargo/config.toml its registry, GOPROXY is a build argument).
 * The base is `FROM scratch` + `ADD rootfs.tar /` (the recorded debootstrap base) because no image registry
 * is reachable here; with `FROM debian:bookworm` the rest would read the same.
 */
export const DOCKERFILES = {
  python: `FROM scratch
ADD rootfs.tar /
RUN apt-get update && apt-get install -y --no-install-recommends python3-venv
WORKDIR /app
COPY requirements.txt ./
RUN python3 -m venv /venv && /venv/bin/pip install -r requirements.txt
COPY main.py ./
RUN /venv/bin/python main.py | tee out.txt
`,
  node: `FROM scratch
ADD rootfs.tar /
RUN apt-get update && apt-get install -y --no-install-recommends nodejs npm
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci
COPY index.js ./
RUN node index.js | tee out.txt
`,
  go: `FROM scratch
ADD rootfs.tar /
RUN apt-get update && apt-get install -y --no-install-recommends golang-go
ARG GOPROXY
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY main.go ./
RUN go build -o /usr/local/bin/app . && app | tee /out.txt
`,
  // cargo-web is bookworm's current Rust (1.85: sparse registries, lockfile v4); bookworm's cargo is 1.65.
  cargo: `FROM scratch
ADD rootfs.tar /
RUN apt-get update && apt-get install -y --no-install-recommends cargo-web
WORKDIR /src
COPY app/ ./
RUN ls -A && cargo build --locked --release && ./target/release/app | tee /out.txt
`,
} as const;

export type Ecosystem = keyof typeof DOCKERFILES;

/** A build context: the base tar (hard-linked: nothing writes it), the Dockerfile, the project's files. */
export async function ecosystemContext(dir: string, ecosystem: Ecosystem, baseTar: string, files: Record<string, string>): Promise<string> {
  const ctx = join(dir, `ctx-${ecosystem}`);
  await mkdir(ctx, { recursive: true });
  await link(baseTar, join(ctx, 'rootfs.tar')).catch(async () => copyFile(baseTar, join(ctx, 'rootfs.tar')));
  await writeFile(join(ctx, 'Dockerfile'), DOCKERFILES[ecosystem]);
  for (const [path, content] of Object.entries(files)) {
    await mkdir(dirname(join(ctx, path)), { recursive: true });
    await writeFile(join(ctx, path), content);
  }
  return ctx;
}

export interface CheckReport {
  reproducible: boolean;
  record: { digest: string; count: number; elapsedMs: number };
  replay: { digest: string; elapsedMs: number; replay: { misses: unknown[] } };
  difference?: { causes: Array<{ kind: string; paths: Array<{ path: string }> }> };
}

/**
 * `fetch-oracle build --check --scrub all` of an ecosystem's context: asserts that it passes, that the
 * Dockerfile is unchanged, and returns the report, the netlock's URLs and the build's output.
 */
export async function checkEcosystem(dir: string, ecosystem: Ecosystem, ctx: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<{ r: RunResult; report: CheckReport; urls: string[] }> {
  const netlock = join(dir, `${ecosystem}.netlock.json`);
  const reportPath = join(dir, `${ecosystem}-check.json`);
  const argv = [CLI, 'build', '--check', '--scrub', 'all', '--data', join(dir, `data-${ecosystem}`), '--storage', join(dir, `storage-${ecosystem}`), '--netlock', netlock, '--report', reportPath, ...args, ctx];
  const r = await run(process.execPath, argv, { env, cwd: dir, timeoutMs: 1_200_000 });
  expect(r.code, explainRun(r)).toBe(0);
  expect(await readFile(join(ctx, 'Dockerfile'), 'utf8')).toBe(DOCKERFILES[ecosystem]);
  const report = JSON.parse(await readFile(reportPath, 'utf8')) as CheckReport;
  expect(report.reproducible).toBe(true);
  expect(report.replay.digest).toBe(report.record.digest);
  expect(report.replay.replay.misses).toEqual([]);
  expect(r.stdout.trim()).toBe(report.record.digest);
  const urls = (JSON.parse(await readFile(netlock, 'utf8')) as { entries: Array<{ url: string }> }).entries.map((e) => e.url);
  // The toolchain came from the Debian mirror through the oracle, in this build.
  expect(urls.some((u) => u.startsWith('http://deb.debian.org/debian/pool/main/'))).toBe(true);
  return { r, report, urls };
}
