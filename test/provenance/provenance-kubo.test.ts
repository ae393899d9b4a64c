import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderNetlockFile } from '../../src/netlock/file.ts';
import { toHex } from '../../src/protocol/signature.ts';
import { LocalSigner } from '../../src/signing/local-signer.ts';
import { KuboBlockStore } from '../../src/store/kubo-block-store.ts';
import { cliInProcess } from '../helpers/cli-in-process.ts';
import { tempDir } from '../helpers/run.ts';
import { anyKubo, KUBO_AVAILABLE, kuboRequiredInCi } from '../interop/kubo-daemon.ts';
import type { KuboDaemon } from '../interop/kubo-daemon.ts';
import { buildFixtureNetlock, MiB } from '../netlock/netlock-fixture.ts';

describe('fetch-oracle provenance --ipfs (real Kubo)', () => {
  kuboRequiredInCi('provenance --ipfs');

  describe.skipIf(!KUBO_AVAILABLE)('against a running daemon', () => {
    let kubo: KuboDaemon;
    let dir: Awaited<ReturnType<typeof tempDir>>;
    beforeAll(async () => {
      kubo = await anyKubo();
      dir = await tempDir('fo-provenance-kubo-');
    }, 120_000);
    afterAll(async () => {
      await kubo?.dispose();
      await dir?.remove();
    });

    it('reads the netlock from Kubo to write the statement and to check it', async () => {
      const data = join(dir.path, 'data');
      const signer = await LocalSigner.loadOrCreate(data);
      const store = new KuboBlockStore({ url: kubo.api });
      const fixture = await buildFixtureNetlock([{ url: 'https://kubo.example/a', bodyBytes: MiB + 3 }, { url: 'https://kubo.example/b', bodyBytes: 10 }], store, signer);
      await store.close();
      const netlock = join(dir.path, 'n.json');
      await writeFile(netlock, renderNetlockFile(fixture.file));
      const out = join(dir.path, 'out.bin');
      await writeFile(out, 'output');
      const prov = join(dir.path, 'p.intoto.jsonl');
      // No --data: the blocks come from Kubo only, the key from --key.
      const w = await cliInProcess(['provenance', netlock, '--ipfs', kubo.api, '--key', join(data, 'oracle-key.json'), '--subject', out, '--out', prov]);
      expect(w.code, w.stderr).toBe(0);
      expect(w.stdout).toContain('2 dependencies');
      const v = await cliInProcess(['provenance', '--verify', prov, '--trust', toHex(signer.publicKey), '--netlock', netlock, '--ipfs', kubo.api, '--subject', out]);
      expect(v.code, v.stderr).toBe(0);
      expect(v.stdout).toContain('(matches)');
    }, 120_000);
  });
});
