import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findBuildah } from '../../src/image/buildah.ts';
import { cleanEnv } from '../helpers/client-session.ts';
import { explainRun } from '../helpers/debian-base.ts';
import { CLI, run, tempDir } from '../helpers/run.ts';
import type { RunResult } from '../helpers/run.ts';

/**
 * What every RUN step of an unmodified Dockerfile sees (real buildah 1.28, a busybox image, no network):
 * SOURCE_DATE_EPOCH from the derived Dockerfile, the Dockerfile's own value where it sets one, and what
 * `--check` says when a step reads /dev/urandom among hundreds of other differing paths.
 */

const inCi = process.env['CI'] === 'true' || process.env['CI'] === '1';
const noBuildah = findBuildah() === undefined;

describe.skipIf(noBuildah && !inCi)(`build: SOURCE_DATE_EPOCH in every RUN step, and --check naming the cause (real buildah, busybox)${noBuildah ? ' [skipped: buildah is not installed]' : ''}`, () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeAll(async () => {
    dir = await tempDir('fo-build-sde-');
  });
  afterAll(async () => {
    await dir?.remove();
  });

  const busybox = async (name: string, dockerfile: (setup: string) => string): Promise<string> => {
    const ctx = join(dir.path, name);
    await mkdir(ctx, { recursive: true });
    await copyFile('/bin/busybox', join(ctx, 'busybox'));
    const setup = 'COPY busybox /bin/busybox\nRUN ["/bin/busybox", "mkdir", "-p", "/usr/bin", "/usr/sbin", "/sbin"]\nRUN ["/bin/busybox", "--install", "-s"]';
    await writeFile(join(ctx, 'Dockerfile'), dockerfile(setup));
    return ctx;
  };
  const build = (name: string, args: string[]): Promise<RunResult> =>
    run(process.execPath, [CLI, 'build', '--data', join(dir.path, 'data'), '--storage', join(dir.path, `storage-${name}`), '--netlock', join(dir.path, `${name}.netlock.json`), ...args], { env: cleanEnv(dir.path), cwd: dir.path, timeoutMs: 300_000 });

  it('every RUN step sees SOURCE_DATE_EPOCH=0 without an ARG; a stage that sets its own keeps it; the user\'s file is not touched', async () => {
    const dockerfile = (setup: string): string => `FROM scratch AS one
${setup}
RUN echo "one=[$SOURCE_DATE_EPOCH] cargo=[$CARGO_CACHE_RUSTC_INFO]" > /one
ENV SOURCE_DATE_EPOCH=1700000000
RUN echo "one-after-env=[$SOURCE_DATE_EPOCH]" > /one-env

FROM one AS two
RUN echo "two-inherits-env=[$SOURCE_DATE_EPOCH]" > /two

FROM scratch AS three
COPY --from=one /bin/busybox /bin/busybox
RUN ["/bin/busybox", "sh", "-c", "echo three=[$SOURCE_DATE_EPOCH] > /three"]
ARG SOURCE_DATE_EPOCH=1600000000
RUN ["/bin/busybox", "sh", "-c", "echo three-after-arg=[$SOURCE_DATE_EPOCH] > /three-arg"]

FROM one
COPY --from=two /two /two
COPY --from=three /three /three-arg /
RUN cat /one /one-env /two /three /three-arg
`;
    const ctx = await busybox('ctx-sde', dockerfile);
    const before = await readFile(join(ctx, 'Dockerfile'), 'utf8');
    const r = await build('sde', ['--scrub', 'cargo', ctx]);
    expect(r.code, explainRun(r)).toBe(0);
    // What the last RUN printed: the derived default where the Dockerfile sets nothing, its own value where it does.
    const printed = r.stderr.split('\n').filter((l) => /^[a-z-]+=\[/.test(l));
    expect(printed).toEqual(['one=[0] cargo=[0]', 'one-after-env=[1700000000]', 'two-inherits-env=[1700000000]', 'three=[0]', 'three-after-arg=[1600000000]']);
    expect(r.stderr).toContain('fetch-oracle build: RUN steps see SOURCE_DATE_EPOCH=0, CARGO_CACHE_RUSTC_INFO=0: a derived Dockerfile declares them in 4 stage(s); yours is not changed');
    expect(r.stderr).toContain('fetch-oracle build: stage 1 sets SOURCE_DATE_EPOCH itself (ENV SOURCE_DATE_EPOCH=1700000000): its value is kept from there on');
    expect(r.stderr).toContain('fetch-oracle build: stage 3 sets SOURCE_DATE_EPOCH itself (ARG SOURCE_DATE_EPOCH=1600000000): its value is kept from there on');
    expect(await readFile(join(ctx, 'Dockerfile'), 'utf8')).toBe(before);

    // --timestamp N is the value; --build-arg SOURCE_DATE_EPOCH=N wins over the defaults (not over ENV), as in any build.
    const t = await build('sde-ts', ['--timestamp', '1234', ctx]);
    expect(t.code, explainRun(t)).toBe(0);
    expect(t.stderr.split('\n').filter((l) => /^one=|^three=/.test(l))).toEqual(['one=[1234] cargo=[]', 'three=[1234]']);
    const b = await build('sde-arg', ['--build-arg', 'SOURCE_DATE_EPOCH=42', ctx]);
    expect(b.code, explainRun(b)).toBe(0);
    expect(b.stderr.split('\n').filter((l) => /^[a-z-]+=\[/.test(l))).toEqual(['one=[42] cargo=[]', 'one-after-env=[1700000000]', 'two-inherits-env=[1700000000]', 'three=[42]', 'three-after-arg=[42]']);
    expect(b.stderr).toContain('RUN steps see SOURCE_DATE_EPOCH (your --build-arg)');
  }, 300_000);

  it('build --check without --layers names the step that reads /dev/urandom as the cause, ahead of 300 timestamped paths in the same layer', async () => {
    const ctx = await busybox(
      'ctx-urandom',
      (setup) => `FROM scratch
${setup}
RUN mkdir /stamps && for i in $(seq 1 300); do date -u > /stamps/$i; done
RUN head -c16 /dev/urandom > /etc/instance-id
RUN echo stable > /stable
`,
    );
    const report = join(dir.path, 'urandom.json');
    const r = await build('urandom', ['--check', '--report', report, ctx]);
    expect(r.code, explainRun(r)).toBe(1);
    // One layer for the whole stage: the causes come first, random data at the top, with the instruction.
    expect(r.stderr).toContain('first differing layer: 1 of 1, made by these instructions (pass --layers for one layer per instruction):');
    const causes = r.stderr.slice(r.stderr.indexOf('paths that differ in that layer'));
    expect(causes).toMatch(/^paths that differ in that layer \(301\), by cause:\n {2}- random data \(1 path\), made by: `head -c16 \/dev\/urandom > \/etc\/instance-id` \(reads random data\)\n {6}\/etc\/instance-id: content\n {6}fix: the step reads random data.*Cartesi Machine/);
    expect(causes).toMatch(/\n {2}- timestamps \(300 paths\), made by: `mkdir \/stamps && for i in .*` \(reads the clock\)\n {6}\/stamps\/\d+: only times differ/);
    expect(causes).toContain('… and 295 more');
    const json = JSON.parse(await readFile(report, 'utf8')) as { difference: { causes: Array<{ kind: string; paths: unknown[]; madeBy: string[] }> } };
    expect(json.difference.causes.map((c) => [c.kind, c.paths.length, c.madeBy])).toEqual([
      ['random', 1, ['head -c16 /dev/urandom > /etc/instance-id']],
      ['timestamps', 300, ['mkdir /stamps && for i in $(seq 1 300); do date -u > /stamps/$i; done']],
    ]);
  }, 300_000);
});
