import { spawn } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { join } from 'node:path';
import { CID } from 'multiformats/cid';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GIO_DOMAIN_IPFS_BLOCK, GIO_RESPONSE_OK } from '../../src/machine/gio-responder.ts';
import { HTIF_DEV_YIELD, HTIF_YIELD_CMD_MANUAL, packHtifWord, unpackHtifWord } from '../../src/machine/htif.ts';
import type { NetlockFile } from '../../src/netlock/file.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import { startOrigin } from '../helpers/origin.ts';
import { CLI, ROOT, tempDir } from '../helpers/run.ts';
import { parseExposition } from './prom-text.ts';

/** One GIO request over the simulated device's socket, as the guest's cmio helper frames it. */
function gioRequest(socketPath: string, domain: number, id: Uint8Array): Promise<{ code: number; data: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let got = Buffer.alloc(0);
    socket.on('error', reject);
    socket.on('data', (d: Buffer) => {
      got = Buffer.concat([got, d]);
      if (got.byteLength < 8) return;
      const word = unpackHtifWord(got.readBigUInt64BE(0));
      if (got.byteLength < 8 + word.data) return;
      socket.destroy();
      resolve({ code: word.reason, data: got.subarray(8, 8 + word.data) });
    });
    const head = Buffer.alloc(8);
    head.writeBigUInt64BE(packHtifWord({ dev: HTIF_DEV_YIELD, cmd: HTIF_YIELD_CMD_MANUAL, reason: domain, data: id.byteLength }));
    socket.write(Buffer.concat([head, id]));
  });
}

describe('serve-machine --metrics: device round trips and block store operations', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;

  beforeAll(async () => {
    dir = await tempDir('fo-metrics-machine-');
  });

  afterAll(async () => {
    await dir?.remove();
  });

  it('counts the GIO requests the simulated device answered, scraped while it runs', async () => {
    const origin = await startOrigin();
    origin.route('/a', (_q, r) => {
      r.writeHead(200, { 'content-type': 'text/plain' });
      r.end('hello');
    });
    const dataDir = join(dir.path, 'data');
    const netlockPath = join(dir.path, 'netlock.json');
    const oracle = await startTestOracle({ mode: 'record', dataDir, netlockPath });
    await oracle.fetch(`${origin.url}/a`);
    await oracle.close();
    await origin.close();
    const file = JSON.parse(await readFile(netlockPath, 'utf8')) as NetlockFile;

    const socketPath = join(dir.path, 'gio.sock');
    const child = spawn(process.execPath, [CLI, 'serve-machine', '--netlock', netlockPath, '--simulate-socket', socketPath, '--data', dataDir, '--metrics', '127.0.0.1:0'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    try {
      let out = '';
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      const metricsUrl = await new Promise<string>((resolve, reject) => {
        child.stdout.on('data', (d: Buffer) => {
          out += d.toString();
          const m = /metrics (\S+)\n/.exec(out);
          if (m !== null && out.includes('simulating the device on')) resolve(m[1]!);
        });
        child.on('exit', (code) => reject(new Error(`serve-machine exited ${code}:\n${err}`)));
      });
      const root = CID.parse(file.netlock);
      const record = CID.parse(file.entries[0]!.record);
      expect((await gioRequest(socketPath, GIO_DOMAIN_IPFS_BLOCK, root.bytes)).code).toBe(GIO_RESPONSE_OK);
      expect((await gioRequest(socketPath, GIO_DOMAIN_IPFS_BLOCK, record.bytes)).code).toBe(GIO_RESPONSE_OK);
      const m = parseExposition(await (await fetch(metricsUrl)).text());
      expect(m.value('fetch_oracle_device_round_trips_total')).toBe(2);
      expect(m.value('fetch_oracle_block_store_operations_total', { op: 'get' })).toBeGreaterThanOrEqual(2);
      expect(m.value('fetch_oracle_requests_total', { outcome: 'hit' })).toBe(0);
    } finally {
      if (child.exitCode === null) child.kill('SIGTERM');
      expect(await exited).toBe(0);
    }
  });
});
