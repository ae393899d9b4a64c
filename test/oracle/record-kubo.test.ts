import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_BINARY, kuboRequiredInCi, kuboRpc, ownKubo } from '../interop/kubo-daemon.ts';
import type { KuboDaemon } from '../interop/kubo-daemon.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { cli, netlockLines, tempDir } from '../helpers/run.ts';

describe('record --ipfs (real Kubo)', () => {
  kuboRequiredInCi('record --ipfs', true);

  describe.skipIf(!HAVE_BINARY)('with a daemon of its own', () => {
    let kubo: KuboDaemon;
    let origin: Origin;
    let dir: Awaited<ReturnType<typeof tempDir>>;

    beforeAll(async () => {
      kubo = await ownKubo();
      origin = await startOrigin();
      origin.route('/pkg.tgz', (_q, r) => {
        r.end(Buffer.alloc(2 * 1024 * 1024 + 3, 4));
      });
      origin.route('/other', (_q, r) => {
        r.end('other');
      });
      dir = await tempDir('fo-record-kubo-');
    }, 600_000);

    afterAll(async () => {
      await origin?.close();
      await kubo?.dispose();
      await dir?.remove();
    });

    it('stores and pins every record and the netlock root in Kubo; verify --ipfs checks Kubo alone', async () => {
      const netlock = join(dir.path, 'k.json');
      const rec = await startTestOracle({ mode: 'record', dataDir: join(dir.path, 'data'), netlockPath: netlock, ipfs: kubo.api });
      expect((await rec.fetch(`${origin.url}/pkg.tgz`)).body.byteLength).toBe(2 * 1024 * 1024 + 3);
      const file = await rec.oracle.close();
      await rec.close();
      const pins = (await (await kuboRpc(kubo.api, 'pin/ls?type=recursive')).json()) as { Keys: Record<string, unknown> };
      expect(Object.keys(pins.Keys)).toEqual(expect.arrayContaining([file!.netlock, (await netlockLines(netlock))[0]!.record]));
      await kuboRpc(kubo.api, 'repo/gc');
      const verified = await cli(['verify', netlock, '--ipfs', kubo.api]);
      expect(verified.code, verified.stdout + verified.stderr).toBe(0);
    });

    it('answers 502 naming Kubo while it is down, records nothing, and recovers when it is back', async () => {
      const rec = await startTestOracle({ mode: 'record', dataDir: join(dir.path, 'data2'), ipfs: kubo.api });
      await kubo.stop();
      const down = await rec.fetch(`${origin.url}/other`);
      expect(down.status).toBe(502);
      expect(down.headers['x-oracle-error']).toBe('ORACLE_ERR_STORE');
      expect(down.body.toString()).toContain(kubo.api.replace(/\/$/, ''));
      await kubo.start();
      const up = await rec.fetch(`${origin.url}/other`);
      expect(up.status).toBe(200);
      expect(up.body.toString()).toBe('other');
      expect(rec.oracle.stats.upstreamFetches).toBe(1); // the refused request never reached the origin
      await rec.close();
    }, 120_000);
  });
});
