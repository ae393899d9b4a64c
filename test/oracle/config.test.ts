import { describe, expect, it } from 'vitest';
import { validateOracleInit } from '../../src/oracle/config.ts';
import type { OracleInit } from '../../src/oracle/config.ts';

const listen = { host: '127.0.0.1', port: 0 };

describe('validateOracleInit', () => {
  it('accepts a record and a replay init', () => {
    expect(() => validateOracleInit({ mode: 'record', dataDir: '/d', listen, refresh: true })).not.toThrow();
    expect(() => validateOracleInit({ mode: 'replay', dataDir: '/d', listen, netlockPath: '/n.json', trust: [] })).not.toThrow();
  });

  it('names the field that is wrong', () => {
    const bad = (init: unknown): OracleInit => init as OracleInit;
    expect(() => validateOracleInit(bad({ mode: 'replay', dataDir: '/d', listen }))).toThrow(/needs a netlock/);
    expect(() => validateOracleInit(bad({ mode: 'replay', dataDir: '/d', listen, netlockPath: '/n', refresh: true }))).toThrow(expect.objectContaining({ code: 'ORACLE_ERR_INVALID_CONFIG', message: expect.stringMatching(/^refresh:/) as unknown }));
    expect(() => validateOracleInit(bad({ mode: 'record', dataDir: '/d', listen, trust: [] }))).toThrow(/^trust:/);
    expect(() => validateOracleInit(bad({ mode: 'proxy', dataDir: '/d', listen }))).toThrow(/^mode:/);
    expect(() => validateOracleInit(bad({ mode: 'record', dataDir: '', listen }))).toThrow(/^dataDir:/);
  });
});
