import { describe, expect, it } from 'vitest';
// The package by its name: resolved through package.json "exports" (a self-reference), as a user imports it.
import {
  CertAuthority,
  computeRequestKey,
  createBlockStore,
  createLogger,
  ERROR_CODES,
  exportCar,
  FsBlockStore,
  importCar,
  LocalSigner,
  Oracle,
  OracleError,
  ReplayMissError,
  readNetlockRoot,
  verifyNetlock,
  verifyProvenanceFile,
  writeNetlockFile,
  writeProvenance,
} from 'fetch-oracle';
import type { BlockStore, RecordInit, Signer } from 'fetch-oracle';

describe('fetch-oracle', () => {
  it('exports the public API by the package name', () => {
    for (const fn of [Oracle, CertAuthority, FsBlockStore, LocalSigner, OracleError, createBlockStore, verifyNetlock, exportCar, importCar, readNetlockRoot, writeNetlockFile, writeProvenance, verifyProvenanceFile, computeRequestKey, createLogger]) {
      expect(typeof fn).toBe('function');
    }
    expect(new ReplayMissError('miss')).toBeInstanceOf(OracleError);
    expect(ERROR_CODES).toContain('ORACLE_ERR_REPLAY_MISS');
  });

  it('types line up with the implementations they name', () => {
    const signer: Signer = LocalSigner.fromSeed(new Uint8Array(32));
    const store: BlockStore = new FsBlockStore('/nonexistent');
    const init: Pick<RecordInit, 'signer'> = { signer };
    expect(signer.publicKey.byteLength).toBe(32);
    expect(store.description).toMatch(/^embedded store /);
    expect(init.signer).toBe(signer);
  });
});
