import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ATTEST_HELP, ATTEST_VERIFY_OPTIONS } from '../../src/cli/attest.ts';
import { cliInProcess } from '../helpers/cli-in-process.ts';
import { cli, ROOT, tempDir } from '../helpers/run.ts';

const FIXTURES = join(ROOT, 'test', 'fixtures', 'nitro');
const PRODUCTION = join(FIXTURES, 'nitrite-production.b64');
const DEBUG = join(FIXTURES, 'nitrite-debug.b64');

// nitrite-production (test/fixtures/nitro/README.md): made 2024-09-07T14:37:39.545Z, leaf valid 14:37:36 → 17:37:39.
const PRODUCTION_FIELDS = {
  module_id: 'i-0a22e5c5f24d22174-enc0191cceb4289903f',
  timestamp: '2024-09-07T14:37:39.545Z',
  digest: 'SHA384',
  public_key: '01'.repeat(1024),
  user_data: '01'.repeat(1024),
  nonce: '01'.repeat(1024),
};
const PROD_PCRS: Record<string, string> = {
  '0': 'e72a46ca80a260fb044a125442f0c7e331813bcbaf9724d9f3857758992766f2d65710a27aa94ae3949dd54e7c9fe86a',
  '1': '0343b056cd8485ca7890ddd833476d78460aed2aa161548e4e26bedf321726696257d623e8805f3f605946b3d8b0c6aa',
  '2': 'd5dcbdea0aa39c802f9d55ced2ea6e4d74ecec5f08fe40c508882639c9090642669106a062a3e24ee2805a3024b9b75c',
  '4': '45706d7b621e4620a332e147a5ddb000b049f73d47d3e61f6b03d2069152d4df6a4a786ad1c10102b955799a9dc96b44',
};
const ZERO48 = '00'.repeat(48);

function expectProductionFields(json: Record<string, unknown>): void {
  expect(json).toMatchObject(PRODUCTION_FIELDS);
  const pcrs = json['pcrs'] as Record<string, string>;
  expect(Object.keys(pcrs)).toEqual([...Array(16).keys()].map(String));
  for (const [index, value] of Object.entries(pcrs)) expect(value, `PCR${index}`).toBe(PROD_PCRS[index] ?? ZERO48);
}

async function attest(...args: string[]): Promise<{ code: number | null; stdout: string; stderr: string; json: Record<string, unknown> | undefined }> {
  const res = await cliInProcess(['attest', 'verify', ...args]);
  return { ...res, json: res.stdout === '' ? undefined : (JSON.parse(res.stdout) as Record<string, unknown>) };
}

describe('fetch-oracle attest verify', () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  const bytes = new Uint8Array(Buffer.from(readFileSync(PRODUCTION, 'utf8'), 'base64'));
  beforeAll(async () => {
    dir = await tempDir('fo-attest-');
  });
  afterAll(async () => {
    await dir.remove();
  });

  it('prints the decoded fields and exits 0 for a valid production document, checking expected PCRs', async () => {
    const ok = await attest(PRODUCTION);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stderr).toBe('');
    expect(ok.json?.['valid']).toBe(true);
    expectProductionFields(ok.json!);
    const pinned = await attest(PRODUCTION, '--pcr0', PROD_PCRS['0']!, '--pcr4', `0x${PROD_PCRS['4']!.toUpperCase()}`, '--pcr3', ZERO48);
    expect(pinned.code, pinned.stdout).toBe(0);
    expectProductionFields(pinned.json!);
    const wrong = await attest(PRODUCTION, '--pcr0', '00'.repeat(47) + '01');
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toBe('');
    expect(wrong.json).toEqual({ valid: false, code: 'ORACLE_ERR_ATTESTATION_PCR_MISMATCH', message: `PCR0 is ${PROD_PCRS['0']}, expected ${'00'.repeat(47)}01` });
  });

  it('--decode-only prints the fields without "valid" and takes no verification flag', async () => {
    const decoded = await attest(DEBUG, '--decode-only');
    expect(decoded.code).toBe(0);
    expect(decoded.json).not.toHaveProperty('valid');
    expect(decoded.json).toMatchObject({ module_id: 'i-0a22e5c5f24d22174-enc0191ccebaf8feaba', timestamp: '2024-09-07T14:38:06.508Z', digest: 'SHA384' });
    expect((decoded.json!['pcrs'] as Record<string, string>)['0']).toBe(ZERO48);
    const mixed = await attest(PRODUCTION, '--decode-only', '--at', 'now');
    expect(mixed.code).toBe(2);
    expect(mixed.stdout).toBe('');
    expect(mixed.stderr).toMatch(/^fetch-oracle: --decode-only does not verify, so --at does not apply/);
    expect(mixed.stderr).toContain(ATTEST_HELP);
  });

  it('rejects a debug-mode document unless --allow-debug', async () => {
    const debug = await attest(DEBUG);
    expect(debug.code).toBe(1);
    expect(debug.json).toMatchObject({ valid: false, code: 'ORACLE_ERR_ATTESTATION_DEBUG_MODE' });
    const allowed = await attest(DEBUG, '--allow-debug');
    expect(allowed.code).toBe(0);
    expect(allowed.json).toMatchObject({ valid: true, module_id: 'i-0a22e5c5f24d22174-enc0191ccebaf8feaba', timestamp: '2024-09-07T14:38:06.508Z' });
  });

  it('--at takes strict RFC 3339 (Z or an offset) or now; a time without an offset is a usage error', async () => {
    const inside = await attest(PRODUCTION, '--at', '2024-09-07T19:30:00+02:00'); // 17:30Z, inside the leaf window
    expect(inside.code, inside.stdout).toBe(0);
    expectProductionFields(inside.json!);
    const late = await attest(PRODUCTION, '--at', '2024-09-07T19:40:00+02:00'); // 17:40Z: the leaf expired at 17:37:39
    expect(late.code).toBe(1);
    expect(late.json).toMatchObject({ valid: false, code: 'ORACLE_ERR_ATTESTATION_EXPIRED', message: expect.stringMatching(/^certificate \(leaf\) has expired at 2024-09-07T17:40:00\.000Z/) as unknown });
    const now = await attest(PRODUCTION, '--at', 'now');
    expect(now.code).toBe(1);
    expect(now.json).toMatchObject({ code: 'ORACLE_ERR_ATTESTATION_EXPIRED' });
    for (const at of ['2024-09-07T17:30:00', '2024-09-07', 'Sat, 07 Sep 2024 17:30:00 GMT', 'tomorrow']) {
      const bad = await attest(PRODUCTION, '--at', at);
      expect(bad.code, at).toBe(2);
      expect(bad.stdout).toBe('');
      expect(bad.stderr).toMatch(/^fetch-oracle: --at expects an RFC 3339 time with Z or an offset/);
    }
  });

  it('--max-age: fresh at --at passes, older fails STALE (exit 1, JSON), and without --at it is measured now', async () => {
    const tenMinutesOn = '2024-09-07T14:47:39.545Z';
    const fresh = await attest(PRODUCTION, '--at', tenMinutesOn, '--max-age', '15m');
    expect(fresh.code, fresh.stdout).toBe(0);
    expectProductionFields(fresh.json!);
    const stale = await attest(PRODUCTION, '--at', tenMinutesOn, '--max-age', '300s');
    expect(stale.code).toBe(1);
    expect(stale.stderr).toBe('');
    expect(stale.json).toEqual({
      valid: false,
      code: 'ORACLE_ERR_ATTESTATION_STALE',
      message: 'document is 10m old at 2024-09-07T14:47:39.545Z (timestamp 2024-09-07T14:37:39.545Z); the maximum age is 5m',
    });
    const early = await attest(PRODUCTION, '--at', '2024-09-07T14:37:38Z', '--max-age', '1h');
    expect(early.json).toMatchObject({ valid: false, code: 'ORACLE_ERR_ATTESTATION_NOT_YET_VALID', message: expect.stringMatching(/after the verification time/) as unknown });
    // Without --at "fresh" means now; years later, the leaf certificate has long expired too.
    const now = await attest(PRODUCTION, '--max-age', '7d');
    expect(now.code).toBe(1);
    expect(now.json).toMatchObject({ valid: false, code: 'ORACLE_ERR_ATTESTATION_EXPIRED' });
    for (const maxAge of ['15', '1.5h', '0s', 'soon']) {
      const bad = await attest(PRODUCTION, '--max-age', maxAge);
      expect(bad.code, maxAge).toBe(2);
      expect(bad.stdout).toBe('');
      expect(bad.stderr).toMatch(/^fetch-oracle: --max-age expects a positive duration/);
    }
  });

  it('names a short or truncated document, as a verification failure (exit 1, JSON on stdout)', async () => {
    const cut = join(dir.path, 'cut.b64');
    await writeFile(cut, Buffer.from(bytes.subarray(0, 3000)).toString('base64'));
    const expectedAtLeast = 7 + 3 + (bytes[8]! << 8 | bytes[9]!); // payload head at offset 7 (59 xx xx) + its length
    for (const extra of [[], ['--decode-only']]) {
      const res = await attest(cut, ...extra);
      expect(res.code, extra.join(' ')).toBe(1);
      expect(res.stderr).toBe('');
      expect(res.json).toEqual({
        valid: false,
        code: 'ORACLE_ERR_ATTESTATION_MALFORMED',
        message: `truncated: COSE_Sign1 envelope is 3000 bytes, expected at least ${expectedAtLeast} (a byte string of ${expectedAtLeast - 10} bytes at offset 7 runs past the end)`,
      });
    }
    const short = join(dir.path, 'short.bin');
    await writeFile(short, Uint8Array.from([0x84, 0x44]));
    const tiny = await attest(short);
    expect(tiny.code).toBe(1);
    expect(tiny.json).toMatchObject({ code: 'ORACLE_ERR_ATTESTATION_MALFORMED', message: 'truncated: COSE_Sign1 envelope is 2 bytes, expected at least 6 (a byte string of 4 bytes at offset 1 runs past the end)' });
    const garbage = join(dir.path, 'garbage.txt');
    await writeFile(garbage, 'not an attestation!');
    expect((await attest(garbage)).json).toMatchObject({ valid: false, code: 'ORACLE_ERR_ATTESTATION_MALFORMED', message: expect.stringMatching(/neither raw CBOR, hex nor base64/) as unknown });
  });

  it('usage errors exit 2 on stderr with the help; an unreadable FILE exits 1 on stderr', async () => {
    for (const args of [[], [PRODUCTION, PRODUCTION], [PRODUCTION, '--pcr5', ZERO48], [PRODUCTION, '--pcr0', 'abc'], [PRODUCTION, '--at']]) {
      const res = await attest(...args);
      expect(res.code, args.join(' ')).toBe(2);
      expect(res.stdout).toBe('');
      expect(res.stderr).toMatch(/^fetch-oracle: /);
    }
    expect((await attest(PRODUCTION, '--pcr0', 'abc')).stderr).toMatch(/--pcr0 expects 48 bytes of hex \(96 digits\), got "abc"/);
    expect((await attest(PRODUCTION, '--pcr5', ZERO48)).stderr).toContain(ATTEST_HELP);
    const missing = await attest(join(dir.path, 'no-such-file'));
    expect(missing.code).toBe(1);
    expect(missing.stdout).toBe('');
    expect(missing.stderr).toMatch(/^fetch-oracle: ENOENT/);
  });

  it('the usage line lists every flag it accepts', () => {
    const usage = ATTEST_HELP.slice(0, ATTEST_HELP.indexOf('\n\n'));
    for (const [name, option] of Object.entries(ATTEST_VERIFY_OPTIONS)) {
      expect(usage, name).toContain(`--${name}`);
      if ('short' in option) expect(usage).toContain(`-${option.short}`);
    }
    for (const n of [0, 1, 2, 3, 4, 8]) expect(usage).toContain(`--pcr${n} HEX`);
  });

  it('through the binary: exit codes and streams as in process', async () => {
    const [ok, stale, usage] = await Promise.all([
      cli(['attest', 'verify', PRODUCTION, '--pcr0', PROD_PCRS['0']!]),
      cli(['attest', 'verify', PRODUCTION, '--at', '2024-09-07T14:47:39.545Z', '--max-age', '5m']),
      cli(['attest', 'verify', PRODUCTION, '--at', '2024-09-07T17:30:00']),
    ]);
    expect(ok.code, ok.stderr).toBe(0);
    expectProductionFields(JSON.parse(ok.stdout) as Record<string, unknown>);
    expect(stale.code).toBe(1);
    expect(JSON.parse(stale.stdout)).toMatchObject({ valid: false, code: 'ORACLE_ERR_ATTESTATION_STALE' });
    expect(usage.code).toBe(2);
    expect(usage.stdout).toBe('');
    expect(usage.stderr).toMatch(/^fetch-oracle: --at expects an RFC 3339 time with Z or an offset .*: no offset \(add Z for UTC\)/);
  });
});
