import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, cli, run, startDaemon, tempDir } from '../helpers/run.ts';

/**
 * Live: the real npm registry through `fetch-oracle record`, then `npm install` offline in `unshare -n`
 * against `replay`. CI does not depend on the public network: set FETCH_ORACLE_LIVE=1 to run it.
 */
describe.skipIf(process.env['FETCH_ORACLE_LIVE'] !== '1')('live: real npm registry (FETCH_ORACLE_LIVE=1)', () => {
  it('records `npm install is-number` and replays it offline', async () => {
    const dir = await tempDir('fo-live-');
    try {
      const data = join(dir.path, 'data');
      const netlock = join(dir.path, 'live.netlock.json');
      const env = { PATH: process.env['PATH'] ?? '', HOME: dir.path };
      const d = await startDaemon(['record', '--listen', '127.0.0.1:0', '--data', data, '--netlock', netlock], env);
      const exported = await cli(['env', '--listen', d.url.replace('http://', ''), '--data', data], { env });
      const proxied: NodeJS.ProcessEnv = { ...env };
      for (const m of exported.stdout.matchAll(/^export (\w+)=(.*)$/gm)) proxied[m[1]!] = m[2]!.replace(/^'|'$/g, '');
      for (const p of ['rec', 'rep']) {
        await run('mkdir', ['-p', join(dir.path, p)]);
        await writeFile(join(dir.path, p, 'package.json'), JSON.stringify({ name: p, version: '1.0.0', dependencies: { 'is-number': '7.0.0' } }));
      }
      const rec = await run('npm', ['install', '--no-audit', '--no-fund', '--cache', join(dir.path, 'c1')], { cwd: join(dir.path, 'rec'), env: proxied });
      expect(rec.code, rec.stderr).toBe(0);
      expect(await d.stop('SIGTERM')).toBe(0);
      const bundle = join(data, 'ca-bundle.pem');
      const script = `ip link set lo up
node ${CLI} replay --netlock ${netlock} --data ${data} --listen 127.0.0.1:8899 >${dir.path}/r.out 2>&1 & pid=$!
for i in $(seq 100); do grep -q listening ${dir.path}/r.out && break; sleep 0.1; done
cd ${dir.path}/rep && HTTPS_PROXY=http://127.0.0.1:8899 https_proxy=http://127.0.0.1:8899 npm_config_cafile=${bundle} NODE_EXTRA_CA_CERTS=${bundle} npm install --no-audit --no-fund --cache ${dir.path}/c2; echo "npm rc=$?"; kill $pid`;
      const rep = await run('unshare', ['-n', 'bash', '-c', script], { env });
      expect(rep.stdout, rep.stderr).toContain('npm rc=0');
      const a = await readFile(join(dir.path, 'rec', 'node_modules', 'is-number', 'index.js'));
      const b = await readFile(join(dir.path, 'rep', 'node_modules', 'is-number', 'index.js'));
      expect(b.equals(a)).toBe(true);
    } finally {
      await dir.remove();
    }
  }, 300_000);
});
