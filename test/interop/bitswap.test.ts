/**
 * Issue 17 part 3: a netlock that travels over IPFS. Machine A records into its Kubo; machine B, whose Kubo
 * has never seen a block of it, replays and verifies by the netlock root alone, the blocks arriving over
 * bitswap. Two real Kubo daemons (separate repos, loopback swarm, no bootstrap/MDNS/routing, peered with
 * `swarm/connect`), the real CLI for record and replay, curl as the client.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CID } from 'multiformats/cid';
import { sha256 as sha256Hasher } from 'multiformats/hashes/sha2';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockFetchTimeoutError, BlockMissingError, StoreError } from '../../src/errors.ts';
import { KuboBlockStore } from '../../src/store/index.ts';
import { connectKubo, HAVE_BINARY, kuboHasLocally, kuboRequiredInCi, ownKubo } from './kubo-daemon.ts';
import type { KuboDaemon } from './kubo-daemon.ts';
import { startOrigin, pseudoRandomChunks } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { cli, run, startDaemon, tempDir } from '../helpers/run.ts';
import type { Daemon, RunResult } from '../helpers/run.ts';

const BIG = 3 * 1024 * 1024 + 7; // several 1 MiB leaves and a dag-pb root
const LATE = 1024 * 1024 + 5;

function bytesOf(total: number, seed: number): Buffer {
  return Buffer.concat([...pseudoRandomChunks(total, seed)]);
}

function sha256(b: Buffer | string): string {
  return createHash('sha256').update(b).digest('hex');
}

/** curl through a proxy; the body is written to a file so that binary bytes compare exactly. */
async function curlVia(proxy: string, url: string, out: string): Promise<{ result: RunResult; status: string; headers: string; body: Buffer }> {
  const result = await run('curl', ['-sS', '--noproxy', '', '-x', proxy, '-D', `${out}.head`, '-o', out, '-w', '%{http_code}', url], { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin' } });
  const headers = await readFile(`${out}.head`, 'utf8').catch(() => '');
  return { result, status: result.stdout.trim(), headers, body: await readFile(out).catch(() => Buffer.alloc(0)) };
}

describe('netlock over IPFS: record into Kubo A, replay and verify on Kubo B over bitswap (two real Kubo daemons)', () => {
  kuboRequiredInCi('two daemons over bitswap', true);

  describe.skipIf(!HAVE_BINARY)('two online daemons on loopback', () => {
    let kuboA: KuboDaemon;
    let kuboB: KuboDaemon;
    let origin: Origin;
    let dir: Awaited<ReturnType<typeof tempDir>>;
    let replay: Daemon | undefined;
    let root = '';
    let key = '';
    const big = bytesOf(BIG, 7);
    const late = bytesOf(LATE, 11);

    beforeAll(async () => {
      [kuboA, kuboB] = await Promise.all([ownKubo({ online: true }), ownKubo({ online: true })]);
      origin = await startOrigin();
      origin.route('/big.tgz', (_q, r) => void r.end(big));
      origin.route('/small.json', (_q, r) => void r.end('{"small":true}\n'));
      origin.route('/late.bin', (_q, r) => void r.end(late));
      dir = await tempDir('fo-bitswap-');

      // Machine A: the real CLI records into Kubo A (and its data directory); SIGINT writes the netlock.
      const netlock = join(dir.path, 'a.netlock.json');
      const rec = await startDaemon(['record', '--listen', '127.0.0.1:0', '--data', join(dir.path, 'a'), '--netlock', netlock, '--ipfs', kuboA.api]);
      try {
        for (const path of ['/big.tgz', '/small.json', '/late.bin']) {
          const got = await curlVia(rec.url, `${origin.url}${path}`, join(dir.path, 'rec.out'));
          expect(got.status, got.result.stderr).toBe('200');
        }
      } finally {
        expect(await rec.stop('SIGINT')).toBe(0);
      }
      const file = JSON.parse(await readFile(netlock, 'utf8')) as { netlock: string; oracles: string[] };
      root = file.netlock;
      key = file.oracles[0]!;
      await connectKubo(kuboB.api, kuboA.api);
    }, 600_000);

    afterAll(async () => {
      await replay?.stop();
      await origin?.close();
      await Promise.all([kuboA?.dispose(), kuboB?.dispose()]);
      await dir?.remove();
    });

    it('KuboBlockStore: local reads miss at once; fetching reads time out naming the CID; a frozen daemon is a StoreError', async () => {
      const nowhere = CID.create(1, 0x55, await sha256Hasher.digest(Buffer.from(`held by no node ${Date.now()}`)));
      const local = new KuboBlockStore({ url: kuboB.api });
      const fetching = new KuboBlockStore({ url: kuboB.api, fetchTimeoutMs: 1000, hasTimeoutMs: 1000 });
      try {
        await expect(local.get(nowhere)).rejects.toBeInstanceOf(BlockMissingError);
        const err = await fetching.get(nowhere).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(BlockFetchTimeoutError);
        expect((err as BlockFetchTimeoutError).cid).toBe(nowhere.toString());
        expect((err as Error).message).toContain(kuboB.api);
        const resume = await kuboB.suspend();
        try {
          const frozen = await fetching.get(nowhere).catch((e: unknown) => e);
          expect(frozen).toBeInstanceOf(StoreError);
          expect(frozen).not.toBeInstanceOf(BlockFetchTimeoutError);
        } finally {
          resume();
        }
      } finally {
        await Promise.all([local.close(), fetching.close()]);
      }
    }, 60_000);

    it('replay --ipfs on B by the root alone serves byte-identical bodies, every block coming from A', async () => {
      expect(await kuboHasLocally(kuboA.api, root)).toBe(true);
      expect(await kuboHasLocally(kuboB.api, root)).toBe(false); // B has never seen the netlock
      replay = await startDaemon(['replay', '--netlock', `ipfs://${root}`, '--ipfs', kuboB.api, '--trust', key, '--data', join(dir.path, 'b'), '--listen', '127.0.0.1:0', '--ipfs-timeout', '5s']);
      const gotBig = await curlVia(replay.url, `${origin.url}/big.tgz`, join(dir.path, 'big.out'));
      expect(gotBig.status, gotBig.result.stderr + replay.stderr()).toBe('200');
      expect(sha256(gotBig.body)).toBe(sha256(big));
      const gotSmall = await curlVia(replay.url, `${origin.url}/small.json`, join(dir.path, 'small.out'));
      expect(gotSmall.status).toBe('200');
      expect(gotSmall.body.toString()).toBe('{"small":true}\n');
      expect(await kuboHasLocally(kuboB.api, root)).toBe(true); // arrived over bitswap
    }, 120_000);

    it('with A stopped, a request needing a block B lacks fails 504 naming the CID, while others are served', async () => {
      expect(replay, 'the previous test started the replay').toBeDefined();
      await kuboA.stop();
      let lateSettled = false;
      const pending = curlVia(replay!.url, `${origin.url}/late.bin`, join(dir.path, 'late.out')).finally(() => (lateSettled = true));
      // While /late.bin waits on the network, /big.tgz (its blocks now on B) is still answered.
      const again = await curlVia(replay!.url, `${origin.url}/big.tgz`, join(dir.path, 'big2.out'));
      expect(again.status).toBe('200');
      expect(sha256(again.body)).toBe(sha256(big));
      expect(lateSettled).toBe(false);
      const failed = await pending;
      expect(failed.status).toBe('504');
      const text = failed.body.toString();
      expect(failed.headers.toLowerCase()).toContain('x-oracle-error: oracle_err_block_fetch_timeout');
      const cid = /did not get block (\S+) from any peer/.exec(text)?.[1];
      expect(cid, text).toMatch(/^baf/);
      expect(text).toContain(kuboB.api);
      expect(await kuboHasLocally(kuboB.api, cid!)).toBe(false);
      // verify --ipfs on B names the entry it cannot check and the code, and exits 1.
      const verified = await cli(['verify', `ipfs://${root}`, '--ipfs', kuboB.api, '--trust', key, '--ipfs-timeout', '2s']);
      expect(verified.code, verified.stdout + verified.stderr).toBe(1);
      expect(verified.stdout).toMatch(/FAIL GET \S*\/late\.bin: ORACLE_ERR_BLOCK_FETCH_TIMEOUT: Kubo at \S+ did not get block baf/);
    }, 120_000);

    it('once A is back and peered, the same request is served, and verify --ipfs on B passes', async () => {
      await kuboA.start();
      await connectKubo(kuboB.api, kuboA.api);
      const got = await curlVia(replay!.url, `${origin.url}/late.bin`, join(dir.path, 'late2.out'));
      expect(got.status, replay!.stderr()).toBe('200');
      expect(sha256(got.body)).toBe(sha256(late));
      const verified = await cli(['verify', `ipfs://${root}`, '--ipfs', kuboB.api, '--trust', key]);
      expect(verified.code, verified.stdout + verified.stderr).toBe(0);
      expect(verified.stdout).toContain(`netlock ${root}`);
      expect(verified.stdout).toContain('entries: 3');
    }, 120_000);
  });
});
