import { readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CID } from 'multiformats/cid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderNetlockFile } from '../../src/netlock/file.ts';
import { toLine } from '../../src/records/record-log.ts';
import { toHex } from '../../src/protocol/signature.ts';
import { FsBlockStore } from '../../src/store/fs-block-store.ts';
import { buildFixtureNetlock } from '../netlock/netlock-fixture.ts';
import type { FixtureNetlock } from '../netlock/netlock-fixture.ts';
import { cli, tempDir } from '../helpers/run.ts';

/**
 * Defect 10 of issue 13: `verify` without `--trust` accepted whatever keys the netlock names without saying
 * so, and `recover` accepted journal lines with bad signatures silently.
 */
describe('defect 10: verify says whose keys it accepted; recover refuses lines that do not verify', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let data: string;
  let fixture: FixtureNetlock;
  const env = (): NodeJS.ProcessEnv => ({ PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir.path });

  beforeAll(async () => {
    dir = await tempDir('fo-d10-');
    data = join(dir.path, 'data');
    fixture = await buildFixtureNetlock(
      ['a', 'b', 'c', 'd'].map((n) => ({ url: `https://files.example/${n}.tgz`, bodyBytes: 1000 + n.charCodeAt(0) })),
      new FsBlockStore(data),
    );
  });
  afterAll(async () => {
    await dir.remove();
  });

  it('verify without --trust says the keys are the file\'s own; with --trust it does not', async () => {
    const path = join(dir.path, 'v.netlock.json');
    await writeFile(path, renderNetlockFile(fixture.file));
    const [open, trusted] = await Promise.all([
      cli(['verify', path, '--data', data], { env: env() }),
      cli(['verify', path, '--data', data, '--trust', toHex(fixture.signer.publicKey)], { env: env() }),
    ]);
    expect(open.code, open.stderr).toBe(0);
    expect(open.stdout).toMatch(/signed by keys named in the file; pass --trust to check who/);
    expect(trusted.code, trusted.stderr).toBe(0);
    expect(trusted.stdout).not.toMatch(/pass --trust/);
    expect(trusted.stdout).toMatch(/every key trusted/);
  });

  it('recover verifies every journal line: bad signature, missing record block, re-pointed key are refused and counted', async () => {
    const netlock = join(dir.path, 'crashed.netlock.json');
    const [a, b, c, d] = fixture.entries.slice().sort((x, y) => (x.key < y.key ? -1 : 1));
    const flipped = new Uint8Array(b!.signed.signature);
    flipped[10]! ^= 0x40;
    const missing = CID.parse('bafyreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy');
    const lines = [
      toLine(a!.key, a!.signed), // good
      toLine(b!.key, { record: b!.signed.record, signature: flipped }), // forged signature
      toLine(c!.key, { record: missing, signature: c!.signed.signature }), // record block not in the store
      toLine(d!.key, a!.signed), // a's validly signed record under d's key
      '{"key": "torn', // a torn last line
    ];
    await writeFile(`${netlock}.journal`, `${lines.join('')}\n`);
    const r = await cli(['recover', '--netlock', netlock, '--data', data], { env: env() });
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/recovered 1 entries/);
    expect(r.stdout).toMatch(/skipped 1 torn line/);
    expect(r.stderr).toMatch(/refused 3 line\(s\) of .*crashed\.netlock\.json\.journal whose record or signature did not verify/);
    expect(r.stderr).toMatch(/GET https:\/\/files\.example\/b\.tgz .*signature/i);
    expect(r.stderr).toMatch(/GET https:\/\/files\.example\/c\.tgz .*not in the store/);
    expect(r.stderr).toMatch(/GET https:\/\/files\.example\/d\.tgz .*answers GET https:\/\/files\.example\/a\.tgz/);
    expect(r.stderr).toMatch(/kept .*journal for inspection/);
    const file = JSON.parse(await readFile(netlock, 'utf8')) as { entries: Array<{ url: string }> };
    expect(file.entries.map((e) => e.url)).toEqual(['https://files.example/a.tgz']);
    await stat(`${netlock}.journal`); // kept
    const v = await cli(['verify', netlock, '--data', data], { env: env() });
    expect(v.code, v.stdout).toBe(0);
  });
});
