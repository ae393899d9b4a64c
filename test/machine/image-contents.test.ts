import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { readNetlockRoot } from '../../src/netlock/file.ts';
import type { ImageMetadata } from '../../src/machine/rootfs/build-image.ts';
import { IN_CI, machineImageProblem, TEST_IMAGE_TIMEOUT_MS, testGuestFiles, testMachineImage } from '../helpers/machine-image.ts';
import type { TestMachineImage } from '../helpers/machine-image.ts';
import { run } from '../helpers/run.ts';

const problem = await machineImageProblem();

/** `debugfs -R COMMAND IMAGE` (read-only); its stdout as bytes. */
async function debugfs(image: string, command: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    execFile('debugfs', ['-R', command, image], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 }, (err, stdout) => (err === null ? resolve(stdout) : reject(new Error(`debugfs -R ${command}: ${err.message}`))));
  });
}

/** The type, mode (octal text), uid and gid `debugfs stat` reports for `path`. */
async function statOf(image: string, path: string): Promise<{ type: string; mode: string; user: number; group: number }> {
  const text = (await debugfs(image, `stat "${path}"`)).toString();
  const m = /Type: (\S+)\s+Mode:\s+(\d+)[\s\S]*?User:\s+(\d+)\s+Group:\s+(\d+)/.exec(text);
  if (m === null) throw new Error(`debugfs stat ${path}: ${text}`);
  return { type: m[1]!, mode: m[2]!, user: Number(m[3]), group: Number(m[4]) };
}

/** The target of the symbolic link at `path`. */
async function linkTarget(image: string, path: string): Promise<string> {
  const text = (await debugfs(image, `stat "${path}"`)).toString();
  const m = /Fast link dest: "([^"]*)"/.exec(text);
  if (m === null) throw new Error(`${path} is not a fast symlink: ${text}`);
  return m[1]!;
}

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

describe.skipIf(problem !== undefined && !IN_CI)(`fetch-oracle machine image: contents${problem === undefined ? '' : ` [skipped: ${problem}]`}`, () => {
  let fixture: TestMachineImage;

  beforeAll(async () => {
    if (problem !== undefined) throw new Error(`${problem}; CI must run this file, so it fails instead of skipping`);
    fixture = await testMachineImage();
  }, TEST_IMAGE_TIMEOUT_MS);

  it('holds our files at the contract paths, byte for byte, root-owned with their modes', async () => {
    const guest = await testGuestFiles();
    const expected: Array<[string, string, string]> = [
      ['/usr/lib/fetch-oracle/fetch-oracle-guest.mjs', guest.shim, '0644'],
      ['/usr/bin/cmio-helper', guest.cmioHelper, '0755'],
      ['/usr/sbin/fetch-oracle-init', guest.init, '0755'],
    ];
    for (const [path, source, mode] of expected) {
      expect(await statOf(fixture.image, path), path).toEqual({ type: 'regular', mode, user: 0, group: 0 });
      expect(sha256(await debugfs(fixture.image, `cat "${path}"`)), path).toBe(sha256(await readFile(source)));
    }
    // /sbin/fetch-oracle-init (the kernel's init=) is that file through the merged-/usr link.
    expect(await linkTarget(fixture.image, '/sbin')).toBe('usr/sbin');
  });

  it('is a merged-/usr Debian system with busybox applets, the mount points and the /etc basics', async () => {
    for (const dir of ['bin', 'sbin', 'lib']) expect(await linkTarget(fixture.image, `/${dir}`)).toBe(`usr/${dir}`);
    expect(await linkTarget(fixture.image, '/usr/sbin/poweroff')).toBe('/usr/bin/busybox');
    expect(await linkTarget(fixture.image, '/usr/bin/sh')).toBe('/usr/bin/busybox');
    expect(await statOf(fixture.image, '/usr/bin/node')).toMatchObject({ type: 'regular', mode: '0755', user: 0 });
    for (const [dir, mode] of [['/mnt/input', '0755'], ['/mnt/output', '0755'], ['/proc', '0555'], ['/sys', '0555'], ['/dev', '0755'], ['/run', '0755'], ['/tmp', '01777'], ['/root', '0700']] as const) {
      expect(await statOf(fixture.image, dir), dir).toEqual({ type: 'directory', mode, user: 0, group: 0 });
    }
    expect((await debugfs(fixture.image, 'cat /etc/passwd')).toString()).toMatch(/^root:x:0:0:/m);
    expect((await debugfs(fixture.image, 'cat /etc/group')).toString()).toMatch(/^root:x:0:/m);
    expect((await debugfs(fixture.image, 'cat /etc/hosts')).toString()).toMatch(/^127\.0\.0\.1\s+localhost$/m);
    // ca-certificates' postinst is not run: the bundle is written as update-ca-certificates would.
    const bundle = (await debugfs(fixture.image, 'cat /etc/ssl/certs/ca-certificates.crt')).toString();
    expect(bundle.match(/-----BEGIN CERTIFICATE-----/g)?.length ?? 0).toBeGreaterThan(100);
  });

  it('describes itself in /etc/fetch-oracle/image.json and lists its packages in the dpkg status', async () => {
    const meta = JSON.parse((await debugfs(fixture.image, 'cat /etc/fetch-oracle/image.json')).toString()) as ImageMetadata;
    const guest = await testGuestFiles();
    expect(meta).toMatchObject({ v: 1, builder: { name: 'fetch-oracle' }, distribution: { suite: 'trixie', architecture: 'riscv64' }, epoch: 0, requested: fixture.packages });
    expect(meta.netlock).toBe((await readNetlockRoot(fixture.netlock)).root.toString());
    expect(meta.guest).toEqual({ shim: sha256(await readFile(guest.shim)), cmioHelper: sha256(await readFile(guest.cmioHelper)), init: sha256(await readFile(guest.init)) });
    const names = meta.packages.map((p) => p.name);
    for (const p of fixture.packages) expect(names).toContain(p);
    expect(names).toEqual([...names].sort());
    const node = meta.packages.find((p) => p.name === 'nodejs');
    expect(node?.version).toMatch(/^20\./);
    const status = (await debugfs(fixture.image, 'cat /var/lib/dpkg/status')).toString();
    const stanzas = status.trimEnd().split('\n\n');
    expect(stanzas.map((s) => /^Package: (.+)$/m.exec(s)?.[1])).toEqual(names);
    expect(status).toMatch(/^Package: nodejs\nStatus: install ok installed\n/m);
  });

  it('is a clean ext2 file system whose every timestamp is the epoch', async () => {
    const fsck = await run('e2fsck', ['-fn', fixture.image]);
    expect(fsck.code, fsck.stdout + fsck.stderr).toBe(0);
    for (const path of ['/', '/usr/bin/node', '/etc/fetch-oracle/image.json', '/lost+found']) {
      const text = (await debugfs(fixture.image, `stat "${path}"`)).toString();
      const times = [...text.matchAll(/^\s*(?:c|a|m|cr)time: (0x[0-9a-f]+:[0-9a-f]+)/gm)].map((m) => m[1]);
      expect(times, path).toEqual(['0x00000000:00000000', '0x00000000:00000000', '0x00000000:00000000', '0x00000000:00000000']);
    }
  });
});
