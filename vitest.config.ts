import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // Tests start real servers and real clients (curl, npm, Kubo); CLI runs pay tsx start-up.
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Two cores: files run two at a time; each test file owns its servers and temp dirs.
    maxWorkers: 2,
    include: ['test/**/*.test.ts'],
    // A directory the test files of one run share expensive fixtures through (the recorded debootstrap base).
    globalSetup: ['test/global-setup.ts'],
  },
});
