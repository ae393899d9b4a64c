/**
 * Issue #15: a record run keeping a large netlock checked every record's signature again before it listened
 * (100,000 entries: 11.8 s), and a replay checked one on every first hit (a quarter of its CPU). Roots this
 * data directory checked whole or wrote are remembered (`verified-netlocks`): a kept netlock with such a root
 * has only its blocks checked, and a replay of one checks its records' blocks, keys and keys' trust, not their
 * signatures. These pin down what is remembered and what is still checked: a netlock whose signatures do not
 * verify is refused unless its root is remembered, and a changed block or an untrusted key is refused either way.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { CID } from 'multiformats/cid';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { InvalidNetlockError } from '../../src/errors.ts';
import { createLogger } from '../../src/log.ts';
import type { DecodedEntry } from '../../src/netlock/file.ts';
import { writeNetlockFile } from '../../src/netlock/file.ts';
import { readKeptNetlock } from '../../src/oracle/kept-netlock.ts';
import { RunSet } from '../../src/oracle/run-set.ts';
import { VERIFIED_NETLOCKS_FILE, VerifiedNetlocks } from '../../src/records/verified-netlocks.ts';
import { FsBlockStore } from '../../src/store/fs-block-store.ts';
import { tamperBlock } from '../helpers/blocks.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import type { TestOracle } from '../helpers/oracle.ts';
import { tempDir } from '../helpers/run.ts';
import { buildFixtureNetlock, manySmallResponses } from '../netlock/netlock-fixture.ts';

const rootOf = (i: number): CID => CID.parse(`bafyreidqz2dr7cr5h62etpb4hlhgkr6o6aw7y5h74sgzcjjsu4sl7w7f${'abcdefghijklmnopqrstuvwxyz234567'[i % 32]}e`);

describe('VerifiedNetlocks', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => {
    dir = await tempDir('fo-verified-netlocks-');
  });
  afterEach(() => dir.remove());

  it('remembers roots across opens, in a file only its owner reads', async () => {
    const first = await VerifiedNetlocks.open(dir.path);
    expect(first.has(rootOf(1))).toBe(false);
    await first.add(rootOf(1));
    await first.add(rootOf(1)); // once
    expect(first.has(rootOf(1))).toBe(true);
    const again = await VerifiedNetlocks.open(dir.path);
    expect(again.has(rootOf(1))).toBe(true);
    expect(again.has(rootOf(2))).toBe(false);
    const path = join(dir.path, VERIFIED_NETLOCKS_FILE);
    expect(await readFile(path, 'utf8')).toBe(`v1 ${rootOf(1).toString()}\n`);
    expect((await stat(path)).mode & 0o777).toBe(0o600);
  });

  it('ignores lines of other check versions and lines it cannot read', async () => {
    await writeFile(join(dir.path, VERIFIED_NETLOCKS_FILE), `v0 ${rootOf(1).toString()}\nv1\ngarbage\nv1 ${rootOf(2).toString()} extra\nv1 ${rootOf(3).toString()}\n`, { mode: 0o600 });
    const v = await VerifiedNetlocks.open(dir.path);
    expect([1, 2, 3].map((i) => v.has(rootOf(i)))).toEqual([false, false, true]);
  });

  it('neither fails a run nor vouches for anything when its file cannot be read or written', async () => {
    await mkdir(join(dir.path, VERIFIED_NETLOCKS_FILE)); // a directory where the file goes: EISDIR both ways
    const v = await VerifiedNetlocks.open(dir.path);
    await expect(v.add(rootOf(1))).resolves.toBeUndefined();
    expect(v.has(rootOf(1))).toBe(false);
  });

  it('cuts the file back to its last 1,024 roots once it holds four times as many', async () => {
    const lines = Array.from({ length: 4097 }, (_, i) => `v1 root-${i}\n`).join('');
    const path = join(dir.path, VERIFIED_NETLOCKS_FILE);
    await writeFile(path, lines, { mode: 0o600 });
    await VerifiedNetlocks.open(dir.path);
    const kept = (await readFile(path, 'utf8')).trimEnd().split('\n');
    expect(kept).toHaveLength(1024);
    expect(kept[0]).toBe('v1 root-3073');
    expect(kept.at(-1)).toBe('v1 root-4096');
  });
});

describe('readKeptNetlock with the roots a data directory verified', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let store: FsBlockStore;
  let path: string;
  beforeEach(async () => {
    dir = await tempDir('fo-kept-verified-');
    store = new FsBlockStore(dir.path);
    path = join(dir.path, 'kept.netlock.json');
  });
  afterEach(() => dir.remove());

  const keep = async (verified: VerifiedNetlocks): Promise<{ count: number; checkedBefore: boolean }> => {
    const run = new RunSet();
    try {
      const kept = await readKeptNetlock(path, store, run, { verified });
      expect(run.size).toBe(kept!.count);
      return { count: kept!.count, checkedBefore: kept!.checkedBefore };
    } finally {
      run.close();
    }
  };

  it('checks a root once, then keeps it with its blocks checked but not its signatures', async () => {
    const fixture = await buildFixtureNetlock(manySmallResponses(5), store);
    await writeNetlockFile(path, fixture.entries, store);
    const verified = await VerifiedNetlocks.open(dir.path);
    expect(await keep(verified)).toEqual({ count: 5, checkedBefore: false });
    expect(verified.has(fixture.root)).toBe(true);
    expect(await keep(await VerifiedNetlocks.open(dir.path))).toEqual({ count: 5, checkedBefore: true });
    // Blocks are still read against their CIDs: a changed record block is refused all the same.
    await tamperBlock(dir.path, fixture.entries[2]!.signed.record.toString(), 'not the record');
    await expect(keep(verified)).rejects.toThrow(/does not hash to its CID/);
  });

  it('refuses a netlock whose signatures do not verify, and does not remember it, unless its root is remembered', async () => {
    const fixture = await buildFixtureNetlock(manySmallResponses(3), store);
    const forged: DecodedEntry[] = fixture.entries.map((e, i) => {
      if (i !== 1) return e;
      const signature = new Uint8Array(e.signed.signature);
      signature[0]! ^= 0xff;
      return { ...e, signed: { record: e.signed.record, signature } };
    });
    const file = await writeNetlockFile(path, forged, store);
    const root = CID.parse(file.netlock);
    const verified = await VerifiedNetlocks.open(dir.path);
    const refused = await keep(verified).catch((err: unknown) => err);
    expect(refused).toBeInstanceOf(InvalidNetlockError);
    expect(String(refused)).toMatch(/signature/i);
    expect(verified.has(root)).toBe(false);
    // The file is trusted as the signing key beside it is: a root it names is not checked again.
    await verified.add(root);
    expect(await keep(verified)).toEqual({ count: 3, checkedBefore: true });
  });
});

describe('host replay of a root the data directory verified', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let store: FsBlockStore;
  let path: string;
  const logs: string[] = [];
  const oracles: TestOracle[] = [];
  beforeEach(async () => {
    dir = await tempDir('fo-replay-verified-');
    store = new FsBlockStore(dir.path);
    path = join(dir.path, 'replayed.netlock.json');
    logs.length = 0;
  });
  afterEach(async () => {
    for (const o of oracles.splice(0)) await o.close();
    await dir.remove();
  });

  const replay = async (trust: Uint8Array): Promise<TestOracle> => {
    const t = await startTestOracle({ mode: 'replay', dataDir: dir.path, netlockPath: path, trust: [trust], logger: createLogger('oracle', (_level, _ns, line) => logs.push(line)) });
    oracles.push(t);
    return t;
  };
  const errorOf = (r: { headers: Record<string, string | string[] | undefined> }): unknown => r.headers['x-oracle-error'];

  it('checks the signature of every record it serves unless the root is remembered; trust and blocks are checked either way', async () => {
    const responses = manySmallResponses(3);
    const fixture = await buildFixtureNetlock(responses, store);
    const forged: DecodedEntry[] = fixture.entries.map((e, i) => {
      if (i !== 1) return e;
      const signature = new Uint8Array(e.signed.signature);
      signature[0]! ^= 0xff;
      return { ...e, signed: { record: e.signed.record, signature } };
    });
    const root = CID.parse((await writeNetlockFile(path, forged, store)).netlock);
    const [a, b, c] = responses.map((r) => r.url);
    const key = fixture.signer.publicKey;

    const unknown = await replay(key);
    expect((await unknown.fetch(a!)).status).toBe(200);
    const refused = await unknown.fetch(b!);
    expect(refused.status).toBe(502);
    expect(errorOf(refused)).toBe('ORACLE_ERR_BAD_SIGNATURE');
    expect(logs.some((l) => l.includes('signatures checked'))).toBe(false);
    await oracles.pop()!.close();

    // The file is trusted as the signing key beside it is: a record of a root it names is served without
    // its signature checked again.
    await (await VerifiedNetlocks.open(dir.path)).add(root);
    const remembered = await replay(key);
    expect(logs.some((l) => l.includes(`replaying netlock ${root.toString()} (3 entries); its signatures checked by an earlier run of this data directory`))).toBe(true);
    const served = await remembered.fetch(b!);
    expect(served.status).toBe(200);
    expect(served.body.byteLength).toBe(512);
    // A changed record block is refused all the same.
    await tamperBlock(dir.path, fixture.entries[2]!.signed.record, 'not the record');
    const tampered = await remembered.fetch(c!);
    expect(tampered.status).toBe(502);
    expect(errorOf(tampered)).toBe('ORACLE_ERR_BLOCK_CORRUPT');
    await oracles.pop()!.close();

    // So is a record whose key this replay does not trust.
    const stranger = await replay(new Uint8Array(32).fill(9));
    const untrusted = await stranger.fetch(a!);
    expect(untrusted.status).toBe(502);
    expect(errorOf(untrusted)).toBe('ORACLE_ERR_UNTRUSTED_KEY');
  }, 60_000);
});
