import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestProject } from 'vitest/node';

declare module 'vitest' {
  export interface ProvidedContext {
    /** A directory shared by every test file of one run, removed at its end (test/helpers/debian-base.ts). */
    sharedDir: string;
  }
}

/**
 * One directory per `vitest run` that test files can share expensive fixtures through (the debootstrap base
 * the build tests record once); made empty here, removed when the run ends.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const dir = await mkdtemp(join(tmpdir(), 'fo-test-shared-'));
  project.provide('sharedDir', dir);
  return async () => {
    await rm(dir, { recursive: true, force: true });
  };
}
