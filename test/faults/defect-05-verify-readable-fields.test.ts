import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderNetlockFile } from '../../src/netlock/file.ts';
import type { NetlockFile } from '../../src/netlock/file.ts';
import { LocalSigner } from '../../src/signing/local-signer.ts';
import { FsBlockStore } from '../../src/store/fs-block-store.ts';
import { toHex } from '../../src/protocol/signature.ts';
import { buildFixtureNetlock } from '../netlock/netlock-fixture.ts';
import type { FixtureNetlock } from '../netlock/netlock-fixture.ts';
import { cli, tempDir } from '../helpers/run.ts';
import { renderVerifyText, verifyNetlockPath } from '../../src/netlock/verify-file.ts';

/**
 * Defect 5 of issue 13: `verify` trusted the readable netlock fields. Editing an entry's body CID, record
 * CID, signature or sha256 (or the count, the oracle keys, the variant rules) in the JSON still verified OK.
 * Every field must be checked against the signed DAG under the file's root; a mismatch names entry and field.
 */
describe('defect 5: verify checks every field of the readable netlock against the signed DAG', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let data: string;
  let fixture: FixtureNetlock;
  const env = (): NodeJS.ProcessEnv => ({ PATH: process.env['PATH'] ?? '/usr/bin:/bin', HOME: dir.path });

  beforeAll(async () => {
    dir = await tempDir('fo-d05-');
    data = join(dir.path, 'data');
    fixture = await buildFixtureNetlock(
      [
        { url: 'https://files.example/a.tgz', bodyBytes: 3000 },
        { url: 'https://files.example/b.tgz', bodyBytes: 5000 },
        { url: 'https://files.example/c.tgz', bodyBytes: 7000 },
      ],
      new FsBlockStore(data),
    );
  });
  afterAll(async () => {
    await dir.remove();
  });

  /** Writes `file` as a netlock and runs `verify` on it. */
  async function verify(name: string, file: unknown, extra: string[] = []): Promise<{ code: number | null; stdout: string }> {
    const path = join(dir.path, `${name}.netlock.json`);
    await writeFile(path, typeof file === 'string' ? file : renderNetlockFile(file as NetlockFile));
    const r = await cli(['verify', path, '--data', data, ...extra], { env: env() });
    return { code: r.code, stdout: r.stdout + r.stderr };
  }

  const clone = (): NetlockFile => JSON.parse(JSON.stringify(fixture.file)) as NetlockFile;
  const b = (f: NetlockFile): NetlockFile['entries'][number] => f.entries.find((e) => e.url.endsWith('/b.tgz'))!;
  const c = (f: NetlockFile): NetlockFile['entries'][number] => f.entries.find((e) => e.url.endsWith('/c.tgz'))!;

  it('accepts the file as written', async () => {
    const r = await verify('good', fixture.file);
    expect(r.code, r.stdout).toBe(0);
    expect(r.stdout).toMatch(/OK: every signature, block and body verified; every field of the file matches the signed netlock/);
  });

  it('fails, naming the entry and the field, for each edited field', async () => {
    const other = toHex(LocalSigner.fromSeed(new Uint8Array(32).fill(9)).publicKey);
    const cases: Array<[string, (f: NetlockFile) => void, RegExp]> = [
      // Another entry's body, record and signature: every one of them is a valid, present, signed block.
      ['body', (f) => void (b(f).body = c(f).body), /FAIL GET https:\/\/files\.example\/b\.tgz: .*field "body"/],
      ['record', (f) => void (b(f).record = c(f).record), /FAIL GET https:\/\/files\.example\/b\.tgz: .*field "record"/],
      ['signature', (f) => void (b(f).signature = c(f).signature), /FAIL GET https:\/\/files\.example\/b\.tgz: .*field "signature"/],
      ['sha256', (f) => void (b(f).sha256 = c(f).sha256), /FAIL GET https:\/\/files\.example\/b\.tgz: .*field "sha256"/],
      ['size', (f) => void (b(f).size = 1), /FAIL GET https:\/\/files\.example\/b\.tgz: .*field "size"/],
      ['status', (f) => void (b(f).status = 404), /FAIL GET https:\/\/files\.example\/b\.tgz: .*field "status"/],
      ['url', (f) => void (b(f).url = 'https://files.example/evil.tgz'), /FAIL GET https:\/\/files\.example\/evil\.tgz: .*not in the signed netlock/],
      ['count', (f) => void (f.count = 2), /FAIL netlock file: .*field "count"/],
      ['oracles', (f) => void (f.oracles = [other]), /FAIL netlock file: .*field "oracles"/],
      ['variantRules', (f) => void (f.variantRules = { 'files.example': ['x-evil'] }), /FAIL netlock file: .*field "variantRules"/],
      ['dropped entry', (f) => void f.entries.splice(1, 1), /FAIL GET https:\/\/files\.example\/b\.tgz: .*not in the file/],
      ['extra field', (f) => void Object.assign(b(f), { integrity: 'sha512-forged' }), /FAIL GET https:\/\/files\.example\/b\.tgz: .*field "integrity" is not part of the signed netlock/],
    ];
    // In process (the CLI's own verify function and text); the CLI itself runs the first case below.
    const results: Array<{ code: number; stdout: string }> = [];
    for (const [name, edit] of cases) {
      const f = clone();
      edit(f);
      const path = join(dir.path, `${name.replace(/\s/g, '-')}.netlock.json`);
      await writeFile(path, renderNetlockFile(f));
      const report = await verifyNetlockPath(path, new FsBlockStore(data), undefined);
      results.push({ code: report.failures.length === 0 ? 0 : 1, stdout: renderVerifyText(report, false) });
    }
    cases.forEach(([name, , pattern], i) => {
      const r = results[i]!;
      expect(r.code, `${name}: ${r.stdout}`).toBe(1);
      expect(r.stdout, name).toMatch(pattern);
      expect(r.stdout, name).not.toMatch(/^OK/m);
    });
  });

  it('fails through the CLI for a body CID swapped with another entry\'s', async () => {
    const f = clone();
    b(f).body = c(f).body;
    const r = await verify('cli-body', f);
    expect(r.code, r.stdout).toBe(1);
    expect(r.stdout).toMatch(/FAIL GET https:\/\/files\.example\/b\.tgz: ORACLE_ERR_INVALID_NETLOCK: entry 2 of the file: field "body" is "bafk\w+" but the signed netlock says "bafk\w+"/);
  });
});
