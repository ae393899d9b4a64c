/** `--netlock ipfs://ROOT` and `--ipfs-timeout` (issue 17 part 3): parsing and misuse, no daemon needed. */
import { describe, expect, it } from 'vitest';
import { isNetlockRootRef, netlockRootOf, readNetlockRoot } from '../../src/netlock/file.ts';
import { InvalidNetlockError } from '../../src/errors.ts';
import { cliInProcess } from '../helpers/cli-in-process.ts';

const ROOT = 'bafyreihm2nkjtrypxw36aaa5frcu7skfenyouivv4lo6b5l5fwpcqulcjm';

describe('netlock named by its root (ipfs://CID)', () => {
  it('reads the root from ipfs://CID without touching the file system', async () => {
    expect(isNetlockRootRef(`ipfs://${ROOT}`)).toBe(true);
    expect(isNetlockRootRef(`./ipfs/${ROOT}`)).toBe(false);
    expect((await readNetlockRoot(`ipfs://${ROOT}`)).root.toString()).toBe(ROOT);
    expect((await readNetlockRoot(`ipfs://${ROOT}`)).file).toBeUndefined();
    expect((await netlockRootOf(`ipfs://${ROOT}/`)).toString()).toBe(ROOT);
  });

  it('refuses an ipfs:// reference that is not a CID, naming it', async () => {
    await expect(readNetlockRoot('ipfs://notacid')).rejects.toThrow(InvalidNetlockError);
    await expect(readNetlockRoot('ipfs://notacid')).rejects.toThrow(/invalid root CID "notacid"/);
  });
});

describe('--ipfs-timeout', () => {
  it('replay and verify refuse it without --ipfs; record refuses it as a replay option (exit 2)', async () => {
    const replay = await cliInProcess(['replay', '--netlock', `ipfs://${ROOT}`, '--ipfs-timeout', '5s']);
    expect(replay.code).toBe(2);
    expect(replay.stderr).toContain('--ipfs-timeout applies only with --ipfs URL');
    const verify = await cliInProcess(['verify', `ipfs://${ROOT}`, '--ipfs-timeout', '5s']);
    expect(verify.code).toBe(2);
    expect(verify.stderr).toContain('--ipfs-timeout applies only with --ipfs URL');
    const record = await cliInProcess(['record', '--ipfs', 'http://127.0.0.1:1', '--ipfs-timeout', '5s']);
    expect(record.code).toBe(2);
    expect(record.stderr).toContain('--ipfs-timeout is a replay option');
  });

  it('refuses a duration it cannot read, naming the flag', async () => {
    const res = await cliInProcess(['verify', `ipfs://${ROOT}`, '--ipfs', 'http://127.0.0.1:1', '--ipfs-timeout', 'soon']);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain('--ipfs-timeout expects a duration');
  });

  it('is documented in the help of replay and verify', async () => {
    for (const command of ['replay', 'verify']) {
      const res = await cliInProcess([command, '--help']);
      expect(res.stdout).toContain('--ipfs-timeout DUR');
      expect(res.stdout).toContain('ipfs://');
    }
  });
});
