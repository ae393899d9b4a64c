import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, readFile, readlink, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pack as tarPack } from 'tar-stream';
import type { OracleError } from '../../src/errors.ts';
import { InvalidConfigError } from '../../src/errors.ts';
import { NOOP_LOGGER } from '../../src/log.ts';
import { asRunConfig, encodeControlRequest, parseControlRequest } from '../../src/machine/control.ts';
import { extractOutputTar, packInputTar } from '../../src/machine/drive-tar.ts';
import { machineLayout } from '../../src/machine/machine-config.ts';
import { checkOutputDir, copyOutput } from '../../src/machine/output-dir.ts';
import { parseResultDrive } from '../../src/machine/result-drive.ts';
import { tempDir } from '../helpers/run.ts';

async function tarOf(entries: Array<{ name: string; type?: 'file' | 'directory' | 'symlink' | 'link'; body?: string; linkname?: string }>): Promise<Uint8Array> {
  const pack = tarPack();
  const parts: Buffer[] = [];
  pack.on('data', (c: unknown) => parts.push(c as Buffer));
  const ended = new Promise<void>((r) => pack.on('end', () => r()));
  for (const e of entries) {
    if (e.type === 'file' || e.type === undefined) pack.entry({ name: e.name, type: 'file' }, e.body ?? '');
    else pack.entry({ name: e.name, type: e.type, ...(e.linkname === undefined ? {} : { linkname: e.linkname }) });
  }
  pack.finalize();
  await ended;
  return Buffer.concat(parts);
}

describe('machineLayout', () => {
  it('places the drives where the emulator and its Lua CLI do (each aligned to its length rounded to a power of two, after RAM)', () => {
    // What `cartesi-machine --ram-length=2Gi --flash-drive=…` reported with machine.get_initial_config for a
    // 512 MiB root, a 4 KiB and a 64 MiB drive: starts 0x100000000, 0x120000000, 0x124000000.
    const l = machineLayout({ ramMib: 2048, imageBytes: 512 * 1024 * 1024, inputMib: 64, outputMib: 256 });
    expect(l.ramBytes).toBe(2n ** 31n);
    expect(l.drives.root.start).toBe(0x1_0000_0000n);
    expect(l.drives.input.start).toBe(0x1_2000_0000n);
    expect(l.drives.output.start).toBe(0x1_3000_0000n);
    expect(l.drives.result.start).toBe(0x1_4000_0000n);
    expect(l.drives.result.length).toBe(4096n);
    const odd = machineLayout({ ramMib: 1024, imageBytes: 175 * 1024 * 1024, inputMib: 3, outputMib: 5 });
    expect(odd.drives.root.start).toBe(0xc000_0000n); // right after 1 GiB of RAM, aligned to 256 MiB
    expect(odd.drives.input.start).toBe(0xd000_0000n); // 175 MiB rounds to 256 MiB
    expect(odd.drives.output.start).toBe(0xd080_0000n); // 5 MiB rounds to 8 MiB: aligned past the 4 MiB input
  });

  it('refuses an image that is not a multiple of 4 KiB, and sizes that are not positive', () => {
    expect(() => machineLayout({ ramMib: 2048, imageBytes: 1000, inputMib: 1, outputMib: 1 })).toThrow(/multiple of 4096 bytes/);
    expect(() => machineLayout({ ramMib: 0, imageBytes: 4096, inputMib: 1, outputMib: 1 })).toThrow(InvalidConfigError);
    expect(() => machineLayout({ ramMib: 128, imageBytes: 4096, inputMib: 1, outputMib: 1 })).toThrow(/too small/);
  });
});

describe('parseResultDrive', () => {
  const drive = (text: string): Uint8Array => {
    const b = new Uint8Array(4096);
    b.set(Buffer.from(text));
    return b;
  };

  it('reads the exit status, the output size and a fatal line from the NUL-padded text', () => {
    expect(parseResultDrive(drive('fetch-oracle-result 1\nexit 7\noutput 10240\n'))).toEqual({ exit: 7, outputBytes: 10240 });
    expect(parseResultDrive(drive('fetch-oracle-result 1\nexit 137\noutput 0\nfatal ORACLE_ERR_BLOCK_CORRUPT: Block does not hash to its CID: bafk…\n'))).toEqual({
      exit: 137,
      outputBytes: 0,
      fatal: 'ORACLE_ERR_BLOCK_CORRUPT: Block does not hash to its CID: bafk…',
    });
  });

  it('says the machine wrote no result when the drive is blank or foreign', () => {
    expect(() => parseResultDrive(new Uint8Array(4096))).toThrow(/halted without writing a result/);
    expect(() => parseResultDrive(drive('something else\n'))).toThrow(/does not start with "fetch-oracle-result 1"/);
    expect(() => parseResultDrive(drive('fetch-oracle-result 1\nexit x\n'))).toThrow(/no valid "exit" line/);
  });
});

describe('control domain 0x27 messages', () => {
  it('round-trips config, miss and stats requests and refuses what is not one', () => {
    expect(parseControlRequest(encodeControlRequest({ op: 'config' }))).toEqual({ op: 'config' });
    const miss = { op: 'miss' as const, method: 'GET', url: 'https://a.example/x', accept: '*/*', nearest: [{ method: 'GET', url: 'https://a.example/y', differs: ['path'] }] };
    expect(parseControlRequest(encodeControlRequest(miss))).toEqual(miss);
    const stats = { op: 'stats' as const, requests: 3, hits: 2, misses: 1, errors: 0, roundTrips: 9, bytes: 100 };
    expect(parseControlRequest(encodeControlRequest(stats))).toEqual(stats);
    for (const bad of ['not json', '[]', '{"op":"launch"}', '{"op":"miss"}', '{"op":"stats","requests":-1}']) {
      const err = (() => {
        try {
          parseControlRequest(Buffer.from(bad));
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect((err as OracleError).code, bad).toBe('ORACLE_ERR_DEVICE');
    }
  });

  it('checks a run config: version, mode, root for replay, time, argv, env names', () => {
    const ok = { v: 1, mode: 'replay', netlockRoot: 'bafy', trust: [], time: 1, argv: ['true'], env: { A_1: 'x' }, input: false, output: true };
    expect(asRunConfig(ok)).toEqual(ok);
    expect(() => asRunConfig({ ...ok, v: 2 })).toThrow(/version 2/);
    expect(() => asRunConfig({ ...ok, netlockRoot: undefined })).toThrow(/replay needs netlockRoot/);
    expect(() => asRunConfig({ ...ok, argv: [] })).toThrow(/argv is empty/);
    expect(() => asRunConfig({ ...ok, env: { 'A-B': 'x' } })).toThrow(/env "A-B"/);
    expect(() => asRunConfig({ ...ok, time: -1 })).toThrow(/time -1/);
  });
});

describe('drive tars', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  beforeEach(async () => {
    dir = await tempDir('fo-drive-');
  });
  afterEach(async () => {
    await dir.remove();
  });

  it('packs --input deterministically: same tree, same bytes, whatever the mtimes and the order of creation', async () => {
    const a = join(dir.path, 'a');
    const b = join(dir.path, 'b');
    await mkdir(join(a, 'sub'), { recursive: true });
    await writeFile(join(a, 'z.txt'), 'z');
    await writeFile(join(a, 'sub', 'x'), 'x');
    await symlink('z.txt', join(a, 'link'));
    await mkdir(join(b, 'sub'), { recursive: true });
    await symlink('z.txt', join(b, 'link'));
    await writeFile(join(b, 'sub', 'x'), 'x');
    await new Promise((r) => setTimeout(r, 20));
    await writeFile(join(b, 'z.txt'), 'z');
    const sums: string[] = [];
    for (const src of [a, b]) {
      const out = join(dir.path, `${src === a ? 'a' : 'b'}.tar`);
      const size = await packInputTar(src, out, 1 << 20);
      const bytes = await readFile(out);
      expect(bytes.byteLength).toBe(size);
      sums.push(createHash('sha256').update(bytes).digest('hex'));
    }
    expect(sums[1]).toBe(sums[0]);
    await expect(packInputTar(a, join(dir.path, 'small.tar'), 1024)).rejects.toThrow(/larger than the input drive/);
  });

  it('extracts the output tar, refusing absolute names, .. and writes through a symlink the tar made', async () => {
    const good = join(dir.path, 'good');
    await mkdir(good);
    const stats = await extractOutputTar(await tarOf([{ name: './', type: 'directory' }, { name: './d/', type: 'directory' }, { name: './d/f.txt', body: 'hi' }, { name: './l', type: 'symlink', linkname: 'd/f.txt' }, { name: './h', type: 'link', linkname: './d/f.txt' }]), good, NOOP_LOGGER);
    expect(stats).toEqual({ files: 1, bytes: 2 });
    expect(await readFile(join(good, 'd', 'f.txt'), 'utf8')).toBe('hi');
    expect(await readlink(join(good, 'l'))).toBe('d/f.txt');
    expect(await readFile(join(good, 'h'), 'utf8')).toBe('hi');
    for (const [name, entries, message] of [
      ['abs', [{ name: '/etc/passwd', body: 'x' }], /absolute path/],
      ['dotdot', [{ name: 'a/../../escape', body: 'x' }], /climbs out/],
      ['through-link', [{ name: 'l', type: 'symlink' as const, linkname: '/tmp' }, { name: 'l/owned', body: 'x' }], /not a directory/],
    ] as const) {
      const target = join(dir.path, name);
      await mkdir(target);
      await expect(extractOutputTar(await tarOf([...entries]), target, NOOP_LOGGER), name).rejects.toThrow(message);
    }
    expect(existsSync('/tmp/owned')).toBe(false);
  });

  it('copies the output into a new or empty directory only, atomically', async () => {
    const full = join(dir.path, 'full');
    await mkdir(full);
    await writeFile(join(full, 'keep'), 'mine');
    await expect(checkOutputDir(full)).rejects.toThrow(/is not empty/);
    const fresh = join(dir.path, 'nested', 'out');
    expect(await copyOutput(await tarOf([{ name: 'a.txt', body: 'A' }]), fresh, NOOP_LOGGER)).toEqual({ files: 1, bytes: 1 });
    expect(await readFile(join(fresh, 'a.txt'), 'utf8')).toBe('A');
    const broken = join(dir.path, 'broken');
    await expect(copyOutput(await tarOf([{ name: '../x', body: 'x' }]), broken, NOOP_LOGGER)).rejects.toThrow(/climbs out/);
    expect(existsSync(broken)).toBe(false);
  });
});
