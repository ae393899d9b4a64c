#!/usr/bin/env node
// Runs the bundle when it is fresh, else the sources through tsx (bundle.js says why).
import { bundleIsFresh, bundlePath } from './bundle.js';

if (bundleIsFresh()) {
  await import(bundlePath);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  await import('../src/cli/main.ts');
}
