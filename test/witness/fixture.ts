import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { join } from 'node:path';
import { expect } from 'vitest';
import { toHex } from '../../src/protocol/signature.ts';
import { LocalSigner } from '../../src/signing/local-signer.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import { cli, tempDir } from '../helpers/run.ts';

/** A real HTTP origin on 127.0.0.1 serving fixed bodies (or statuses) by path, on a given port or a free one. */
export interface FixedOrigin {
  port: number;
  url: string;
  close(): Promise<void>;
}

export async function startFixedOrigin(routes: Record<string, { status?: number; body: string }>, port = 0): Promise<FixedOrigin> {
  const sockets = new Set<Socket>();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const route = routes[req.url ?? '/'];
    res.writeHead(route === undefined ? 404 : (route.status ?? 200), { 'content-type': 'text/plain' });
    res.end(route?.body ?? 'no route\n');
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', resolve);
  });
  const bound = (server.address() as AddressInfo).port;
  return {
    port: bound,
    url: `http://127.0.0.1:${bound}`,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** The witness's key: a fixed seed, so that tests can name its public key. */
export const WITNESS_SEED = new Uint8Array(32).fill(0x42);

export interface WitnessScenario {
  dir: { path: string; remove(): Promise<void> };
  /** Oracle A's data directory (it recorded) and B's (the witness: A's netlocks imported, its own records). */
  dataA: string;
  dataB: string;
  keyA: string;
  keyB: string;
  keyFileB: string;
  /** URL of the origin both oracles saw (origin 1 for A, origin 2 for B, same port) and of the one B cannot reach. */
  url: string;
  farUrl: string;
  /** In B's data directory: netlock with /same.txt only; netlock with every entry. */
  sameNetlock: string;
  fullNetlock: string;
  /** Origin 2, serving while the witness fetches (closed by `close`). */
  close(): Promise<void>;
}

/**
 * Two oracles with different keys and two origins that serve the same URLs: A records /same.txt, /changes.txt and
 * /gone.txt from origin 1 (and /far.txt from a third origin), its netlocks travel to B as CAR files, then origin 1
 * is replaced by origin 2 on the same port, which serves /same.txt with the same bytes, /changes.txt with other
 * bytes and /gone.txt as a 404; /far.txt's origin is gone.
 */
export async function witnessScenario(): Promise<WitnessScenario> {
  const dir = await tempDir('fo-witness-');
  const dataA = join(dir.path, 'a');
  const dataB = join(dir.path, 'b');
  const origin1 = await startFixedOrigin({ '/same.txt': { body: 'same bytes\n' }, '/changes.txt': { body: 'version 1\n' }, '/gone.txt': { body: 'here today\n' } });
  const far = await startFixedOrigin({ '/far.txt': { body: 'far away\n' } });
  const url = origin1.url;
  const recorded: Record<string, string> = {};
  for (const [name, paths] of [
    ['same', ['/same.txt']],
    ['full', ['/same.txt', '/changes.txt', '/gone.txt', `${far.url}/far.txt`]],
  ] as const) {
    const netlock = join(dir.path, `${name}.a.json`);
    const rec = await startTestOracle({ mode: 'record', dataDir: dataA, netlockPath: netlock });
    for (const p of paths) expect((await rec.fetch(p.startsWith('http') ? p : `${url}${p}`)).status).toBe(200);
    await rec.oracle.close();
    await rec.close();
    const car = join(dir.path, `${name}.car`);
    const exported = await cli(['export', '--car', car, netlock, '--data', dataA]);
    expect(exported.code, exported.stderr).toBe(0);
    recorded[name] = join(dataB, `${name}.json`);
    const imported = await cli(['import', car, '--data', dataB, '--netlock', recorded[name]]);
    expect(imported.code, imported.stderr).toBe(0);
  }
  await origin1.close();
  await far.close();
  const origin2 = await startFixedOrigin({ '/same.txt': { body: 'same bytes\n' }, '/changes.txt': { body: 'version 2, other bytes\n' }, '/gone.txt': { status: 404, body: 'gone\n' } }, origin1.port);
  const keyFileB = join(dir.path, 'witness-key.json');
  await writeFile(keyFileB, `${JSON.stringify({ seed: toHex(WITNESS_SEED) })}\n`, { mode: 0o600 });
  const keyA = (await LocalSigner.loadOrCreate(dataA)).publicKey;
  return {
    dir,
    dataA,
    dataB,
    keyA: toHex(keyA),
    keyB: toHex(LocalSigner.fromSeed(WITNESS_SEED).publicKey),
    keyFileB,
    url,
    farUrl: far.url,
    sameNetlock: recorded['same']!,
    fullNetlock: recorded['full']!,
    async close() {
      await origin2.close();
      await dir.remove();
    },
  };
}
