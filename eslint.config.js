import tseslint from 'typescript-eslint';

// Boundary rules (docs style.md, "Boundary rules, enforced by lint"). ESLint replaces a rule's options when a
// later block names the same rule, so each area's `no-restricted-imports` is composed from these parts.
const NO_SIM = { group: ['**/sim/**', '!./**'], message: 'Test-only simulators: only the simulator command (src/cli/serve-machine.ts) and tests may import sim/.' };
const CORE_IO = ['node:net', 'node:http', 'node:https', 'node:tls', 'node:fs', 'node:fs/promises', 'node:child_process', 'node:dgram', 'node:dns', 'undici', 'kubo-rpc-client', 'hono', '@hono/node-server'];
const CORE_LAYERS = {
  group: ['../*', '!../errors.ts', '!../log.ts'],
  message: 'src/protocol/ is the pure core: it imports only itself, errors and the logger (no sockets, files, stores or proxy).',
};
const GUEST_FORBIDDEN = {
  group: [
    '**/src/cli/**', '**/src/records/**', '**/src/store/**', '**/src/seed/**', '**/src/run/**', '**/src/image/**', '**/src/upstream/**',
    '**/src/admin/**', '**/src/report/**', '**/src/oracle/oracle*', '**/src/oracle/record*', '**/src/oracle/recorder*', '**/src/proxy/record-handler*', '**/src/proxy/request-body*',
  ],
  message: 'The guest never dials out, never records and never spools: import only the core, the proxy front, TLS and openReplay.',
};

export default tseslint.config(
  { ignores: ['node_modules/**', 'dist/**', 'guest/dist/**', 'enclave/dist/**', 'test/kubo/bin/**', '.tmp/**'] },
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/consistent-type-imports': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      'no-restricted-syntax': ['error', { selector: 'ExportDefaultDeclaration', message: 'Named exports only (style habit 3).' }],
    },
    linterOptions: { reportUnusedDisableDirectives: 'error' },
  },
  // Type-aware lint (style habit 15) for every .ts file: each is in tsconfig.json or, for test/ and vitest.config.ts,
  // test/tsconfig.json (the first project that includes a file types it).
  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: { parserOptions: { project: ['./tsconfig.json', './test/tsconfig.json'], tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/only-throw-error': 'error',
      '@typescript-eslint/return-await': ['error', 'in-try-catch'],
      '@typescript-eslint/no-floating-promises': 'error',
      // A caught `unknown` passes on to reject() as it is, as only-throw-error lets it be rethrown.
      '@typescript-eslint/prefer-promise-reject-errors': ['error', { allowThrowingUnknown: true }],
      // The recommended options, plus CIDs: a CID stringifies to its canonical string (the form every message uses).
      '@typescript-eslint/restrict-template-expressions': ['error', {
        allowAny: true, allowBoolean: true, allowNullish: true, allowNumber: true, allowRegExp: true,
        allow: [{ from: 'lib', name: ['Error', 'URL', 'URLSearchParams'] }, { from: 'package', name: 'CID', package: 'multiformats' }],
      }],
    },
  },
  {
    files: ['src/**/*.ts', 'guest/**/*.ts'],
    rules: {
      '@typescript-eslint/explicit-function-return-type': ['error', { allowExpressions: true, allowTypedFunctionExpressions: true, allowHigherOrderFunctions: true }],
    },
  },
  // JS files (this config, bin/) are not type-checked.
  { files: ['**/*.js'], extends: [tseslint.configs.disableTypeChecked] },
  // Tool config files must default-export; the named-exports rule is for the product's code.
  { files: ['*.config.ts', '*.config.js'], rules: { 'no-restricted-syntax': 'off' } },
  {
    // Library code logs through the Logger; only entrypoints talk to the terminal.
    files: ['src/**/*.ts', 'guest/**/*.ts', 'enclave/**/*.ts'],
    ignores: ['src/cli/main.ts', 'guest/main.ts', 'enclave/main.ts'],
    rules: { 'no-console': 'error' },
  },
  {
    // Nothing in production code reaches the simulators, except the simulator's own command.
    files: ['src/**/*.ts'],
    ignores: ['src/cli/serve-machine.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [NO_SIM] }] },
  },
  {
    // The replay core is shared with the guest: no sockets, no file system, no network clients.
    files: ['src/protocol/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: CORE_IO, patterns: [CORE_LAYERS, NO_SIM] }] },
  },
  {
    // The Recorder and Replayer are socket-free: HTTP stays in the proxy front (src/proxy/).
    files: ['src/oracle/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { paths: ['node:http', 'node:https', 'node:net'], patterns: [NO_SIM] }] },
  },
  {
    // The netlock (build, read, verify, CAR) sits below the modes: no arrow back up into oracle/ or proxy/.
    // src/provenance/ (statements about a netlock) sits at the same level.
    files: ['src/netlock/**/*.ts', 'src/provenance/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: ['../oracle/**', '../proxy/**', '../cli/**'], message: 'src/netlock/ and src/provenance/ must not import oracle/, proxy/ or cli/ (the record check lives in src/protocol/verify-record.ts).' }, NO_SIM] }] },
  },
  {
    // The admin API and the proxy front both talk to the Oracle through narrow interfaces, not to each other.
    files: ['src/admin/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: ['../proxy/**', '**/src/proxy/**'], message: 'src/admin/ must not import src/proxy/.' }, NO_SIM] }] },
  },
  {
    // The proxy front reaches a mode only through the handler interfaces it defines (exchange.ts,
    // record-handler.ts, replay-handler.ts); types only, never an implementation.
    files: ['src/proxy/**/*.ts'],
    rules: { 'no-restricted-imports': ['error', { patterns: [{ group: ['../oracle/**', '../admin/**', '../cli/**'], message: 'src/proxy/ must not import oracle/, admin/ or cli/: define the interface it needs here.' }, NO_SIM] }] },
  },
  {
    // The guest replays only: it shares the replay core, proxy front and TLS with the host, but must never
    // reach code that can dial out or write records (the "never dials out" guarantee is this rule).
    files: ['guest/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: ['undici', 'kubo-rpc-client', 'hono', '@hono/node-server', 'node:net', 'node:https', 'node:dgram', 'node:dns'],
        patterns: [GUEST_FORBIDDEN, NO_SIM],
      }],
    },
  },
  {
    files: ['enclave/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/src/*', '!**/src/protocol/**'], message: 'enclave/ may import only src/protocol/**.' }, NO_SIM] }],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: { 'no-restricted-syntax': ['error', { selector: "CallExpression[callee.object.name=/^(it|describe|test)$/][callee.property.name=/^(only|skip)$/]", message: 'No focused or skipped tests.' }] },
  },
);
