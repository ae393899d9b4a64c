#!/usr/bin/env node
// Runs the TypeScript sources directly through tsx, so `npx fetch-oracle` works right after `npm ci`
// with no separate build step and can never run stale output.
import { register } from 'tsx/esm/api';

register();
await import('../src/cli.ts');
