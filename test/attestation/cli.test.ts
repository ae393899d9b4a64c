import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cli, ROOT } from '../helpers/run.ts';

const FIXTURES = join(ROOT, 'test', 'fixtures', 'nitro');

describe('fetch-oracle attest verify', () => {
  it('prints the decoded fields and exits 0 for a valid production document, checking an expected PCR0', async () => {
    const ok = await cli(['attest', 'verify', join(FIXTURES, 'nitrite-production.b64')]);
    expect(ok.code, ok.stderr).toBe(0);
    const doc = JSON.parse(ok.stdout) as { valid: boolean; pcrs: Record<string, string>; module_id: string };
    expect(doc.valid).toBe(true);
    expect(doc.module_id).toMatch(/^i-/);
    const pinned = await cli(['attest', 'verify', join(FIXTURES, 'nitrite-production.b64'), '--pcr0', doc.pcrs['0']!]);
    expect(pinned.code).toBe(0);
    const wrong = await cli(['attest', 'verify', join(FIXTURES, 'nitrite-production.b64'), '--pcr0', '00'.repeat(47) + '01']);
    expect(wrong.code).toBe(1);
    expect(JSON.parse(wrong.stdout)).toMatchObject({ valid: false, code: 'ORACLE_ERR_ATTESTATION_PCR_MISMATCH' });
  });

  it('rejects a debug-mode document unless --allow-debug, and an expired chain with --at', async () => {
    const debug = await cli(['attest', 'verify', join(FIXTURES, 'nitrite-debug.b64')]);
    expect(debug.code).toBe(1);
    expect(JSON.parse(debug.stdout)).toMatchObject({ code: 'ORACLE_ERR_ATTESTATION_DEBUG_MODE' });
    expect((await cli(['attest', 'verify', join(FIXTURES, 'nitrite-debug.b64'), '--allow-debug'])).code).toBe(0);
    const late = await cli(['attest', 'verify', join(FIXTURES, 'nitrite-production.b64'), '--at', '2030-01-01T00:00:00Z']);
    expect(late.code).toBe(1);
    expect(JSON.parse(late.stdout)).toMatchObject({ code: 'ORACLE_ERR_ATTESTATION_EXPIRED' });
  });
});
