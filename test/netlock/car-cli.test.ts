import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createLogger } from '../../src/log.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import { startOrigin } from '../helpers/origin.ts';
import { cli, tempDir } from '../helpers/run.ts';

describe('fetch-oracle export / import (CLI)', () => {
  it('carries a recorded netlock through a CAR into an empty data dir, where it verifies and replays', async () => {
    const dir = await tempDir('fo-car-cli-');
    const origin = await startOrigin();
    try {
      origin.route('/a.bin', (_q, r) => {
        r.end(Buffer.alloc(3 * 1024 * 1024 + 1, 9));
      });
      const netlock = join(dir.path, 'n.json');
      const rec = await startTestOracle({ mode: 'record', dataDir: join(dir.path, 'src'), netlockPath: netlock });
      await rec.fetch(`${origin.url}/a.bin`);
      const file = await rec.oracle.close();
      await rec.close();
      const car = join(dir.path, 'n.car');
      const exported = await cli(['export', '--car', car, netlock, '--data', join(dir.path, 'src')]);
      expect(exported.code, exported.stderr).toBe(0);
      const imported = await cli(['import', car, '--data', join(dir.path, 'dst'), '--netlock', join(dir.path, 'imported.json')]);
      expect(imported.code, imported.stderr).toBe(0);
      expect(imported.stdout).toContain(file!.netlock);
      const verified = await cli(['verify', join(dir.path, 'imported.json'), '--data', join(dir.path, 'dst')]);
      expect(verified.code, verified.stdout).toBe(0);
      // The import checked every record's signature: the data directory remembers the root (as the record run's
      // does the root it wrote), and a replay from it does not check them again.
      expect(await readFile(join(dir.path, 'dst', 'verified-netlocks'), 'utf8')).toBe(`v1 ${file!.netlock}\n`);
      expect(await readFile(join(dir.path, 'src', 'verified-netlocks'), 'utf8')).toBe(`v1 ${file!.netlock}\n`);
      const logs: string[] = [];
      const rep = await startTestOracle({ mode: 'replay', dataDir: join(dir.path, 'dst'), netlockPath: join(dir.path, 'imported.json'), trust: [Buffer.from(file!.oracles[0]!, 'hex')], logger: createLogger('oracle', (_l, _n, line) => logs.push(line)) });
      expect((await rep.fetch(`${origin.url}/a.bin`)).body.byteLength).toBe(3 * 1024 * 1024 + 1);
      await rep.close();
      expect(logs).toContain(`replaying netlock ${file!.netlock} (1 entries); its signatures checked by an earlier run of this data directory`);
      // A CAR cut short imports nothing.
      const bytes = await readFile(car);
      const { writeFile } = await import('node:fs/promises');
      await writeFile(join(dir.path, 'short.car'), bytes.subarray(0, bytes.byteLength - 100));
      const bad = await cli(['import', join(dir.path, 'short.car'), '--data', join(dir.path, 'dst2')]);
      expect(bad.code).not.toBe(0);
      expect(bad.stderr).toMatch(/ORACLE_ERR_|truncated|Truncated/);
      expect(await readFile(join(dir.path, 'dst2', 'verified-netlocks'), 'utf8').catch(() => 'none')).toBe('none');
    } finally {
      await origin.close();
      await dir.remove();
    }
  });

  it('writes the imported netlock file as it was recorded, variant rules included, and it verifies', async () => {
    const dir = await tempDir('fo-car-cli-rules-');
    const origin = await startOrigin();
    try {
      for (const name of ['a', 'b', 'c']) origin.route(`/${name}`, (_q, r) => {
        r.end(`body ${name}`);
      });
      const netlock = join(dir.path, 'n.json');
      const rec = await startTestOracle({ mode: 'record', dataDir: join(dir.path, 'src'), netlockPath: netlock, variantRules: { '127.0.0.1': ['x-api-version'] } });
      for (const name of ['a', 'b', 'c']) await rec.fetch(`${origin.url}/${name}`);
      await rec.oracle.close();
      await rec.close();
      const car = join(dir.path, 'n.car');
      expect((await cli(['export', '--car', car, netlock, '--data', join(dir.path, 'src')])).code).toBe(0);
      const imported = join(dir.path, 'imported.json');
      const run = await cli(['import', car, '--data', join(dir.path, 'dst'), '--netlock', imported]);
      expect(run.code, run.stderr).toBe(0);
      expect(await readFile(imported, 'utf8')).toBe(await readFile(netlock, 'utf8'));
      expect(JSON.parse(await readFile(imported, 'utf8'))).toMatchObject({ count: 3, variantRules: { '127.0.0.1': ['x-api-version'] } });
      const verified = await cli(['verify', imported, '--data', join(dir.path, 'dst')]);
      expect(verified.code, verified.stdout).toBe(0);
    } finally {
      await origin.close();
      await dir.remove();
    }
  });
});
