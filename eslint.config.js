import tseslint from 'typescript-eslint';

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
  // Tool config files must default-export; the named-exports rule is for the product's code.
  { files: ['*.config.ts', '*.config.js'], rules: { 'no-restricted-syntax': 'off' } },
  {
    // Library code logs through the Logger; only entrypoints talk to the terminal.
    files: ['src/**/*.ts', 'guest/**/*.ts', 'enclave/**/*.ts'],
    ignores: ['src/cli/main.ts', 'guest/main.ts', 'enclave/main.ts'],
    rules: { 'no-console': 'error' },
  },
  {
    // The replay core is shared with the guest: no sockets, no file system, no network clients.
    files: ['src/protocol/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: ['node:net', 'node:http', 'node:https', 'node:tls', 'node:fs', 'node:fs/promises', 'undici', 'kubo-rpc-client', 'hono'],
      }],
    },
  },
  {
    // The guest replays only: it shares the replay core, proxy front and TLS with the host, but must never
    // reach code that can dial out or write records (the "never dials out" guarantee is this rule).
    files: ['guest/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: ['undici', 'kubo-rpc-client', 'hono', '@hono/node-server', 'node:net', 'node:https', 'node:dgram', 'node:dns'],
        patterns: [{
          group: ['**/src/upstream/**', '**/src/records/**', '**/src/store/fs-*', '**/src/store/kubo-*', '**/src/oracle/record-mode*', '**/src/oracle/oracle*', '**/src/admin/**', '**/src/cli/**'],
          message: 'The guest never dials out and never records: import only the replay side.',
        }],
      }],
    },
  },
  {
    files: ['enclave/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', { patterns: [{ group: ['**/src/*', '!**/src/protocol/**'], message: 'enclave/ may import only src/protocol/**.' }] }],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: { 'no-restricted-syntax': ['error', { selector: "CallExpression[callee.object.name=/^(it|describe|test)$/][callee.property.name=/^(only|skip)$/]", message: 'No focused or skipped tests.' }] },
  },
);
