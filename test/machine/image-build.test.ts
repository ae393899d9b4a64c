import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captured } from '../helpers/cli-in-process.ts';
import { IN_CI, machineImageProblem, TEST_IMAGE_TIMEOUT_MS, testMachineImage } from '../helpers/machine-image.ts';
import type { TestMachineImage } from '../helpers/machine-image.ts';
import { tempDir } from '../helpers/run.ts';
import { runCommandLine } from '../../src/cli/commands.ts';

async function sha256File(path: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(path)) h.update(chunk as Buffer);
  return h.digest('hex');
}

const problem = await machineImageProblem();

/**
 * `fetch-oracle machine image` end to end: a test image (recorded from the real Debian mirror through the
 * oracle, built once per machine) rebuilt by the command offline from its netlock, byte for byte. The image
 * of the default packages only (~50 packages, seconds to rebuild), not the shared test set (~430 packages,
 * over a minute): the same code path, a tenth of the time.
 */
describe.skipIf(problem !== undefined && !IN_CI)(`fetch-oracle machine image: reproducible${problem === undefined ? '' : ` [skipped: ${problem}]`}`, () => {
  let fixture: TestMachineImage;
  let dir: Awaited<ReturnType<typeof tempDir>>;

  beforeAll(async () => {
    if (problem !== undefined) throw new Error(`${problem}; CI must run this file, so it fails instead of skipping`);
    dir = await tempDir('fo-machine-image-');
    fixture = await testMachineImage({ packages: [] });
  }, TEST_IMAGE_TIMEOUT_MS);
  afterAll(async () => dir?.remove());

  it(
    'rebuilds the recorded image offline from its netlock (--replay) to the same sha256, and says so',
    async () => {
      const out = join(dir.path, 'replayed.ext2');
      const netlockBefore = await readFile(fixture.netlock, 'utf8');
      const stdout = captured();
      const stderr = captured();
      // Defaults named again, in another order and with other separators: the list is a set.
      const code = await runCommandLine(['machine', 'image', '--out', out, '--packages', 'curl , nodejs busybox-static', '--replay', fixture.netlock, '--data', fixture.dataDir], {
        defaultDataDir: '/nonexistent',
        stdin: (async function* () {})(),
        stdout,
        stderr,
      });
      expect(code, stderr.text()).toBe(0);
      const text = stdout.text();
      expect(text).toContain(`sha256: ${fixture.sha256}\n`);
      expect(text).toMatch(new RegExp(`netlock: ${fixture.netlock.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(bafy[a-z2-7]+, \\d+ entries, replayed offline\\)`));
      expect(text).toMatch(/packages: \d+ \(busybox-static, ca-certificates, curl, nodejs and \d+ dependencies\)/);
      expect(await sha256File(out)).toBe(fixture.sha256);
      // A replay reads the netlock; it never writes it.
      expect(await readFile(fixture.netlock, 'utf8')).toBe(netlockBefore);
    },
    TEST_IMAGE_TIMEOUT_MS,
  );
});
