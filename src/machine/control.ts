/**
 * GIO domain 0x27, the run's control channel between the guest shim and `fetch-oracle machine run`
 * (docs/cartesi.md "GIO domains"). Pure (no I/O): the host and the guest bundle share these shapes.
 *
 * id = UTF-8 JSON `{"op": …}`:
 * - `config` → reply: the RunConfig JSON. The first control yield of a boot, so the host's snapshot point.
 * - `miss`   → reply empty: a replay miss the host prints, explained, when the command ends.
 * - `stats`  → reply empty: the shim's counters, sent once when it is stopped.
 * Replies use code 1; a request the host cannot read is refused in band (0xFFFF, `ORACLE_ERR_DEVICE: …`).
 */
import { DeviceError, InvalidConfigError } from '../errors.ts';

export const GIO_DOMAIN_CONTROL = 0x27;
export const RUN_CONFIG_VERSION = 1;

/** What the guest needs to know about the run, answered to `{"op":"config"}`. */
export interface RunConfig {
  v: 1;
  mode: 'replay' | 'record';
  /** The netlock's root CID (replay; record may start from none). */
  netlockRoot?: string;
  /** Trusted oracle ed25519 public keys, hex. */
  trust: string[];
  /** The guest's clock at the start of the command (`date -s @time`), unix seconds. */
  time: number;
  /** The command and its arguments. */
  argv: string[];
  /** Extra environment variables for the command. */
  env: Record<string, string>;
  /** The input drive holds a tar to unpack into FETCH_ORACLE_INPUT. */
  input: boolean;
  /** The host wants FETCH_ORACLE_OUTPUT back (tarred onto the output drive). */
  output: boolean;
}

export interface MissReport {
  op: 'miss';
  method: string;
  url: string;
  accept: string;
  nearest: Array<{ method: string; url: string; differs: string[] }>;
}

export interface ShimStats {
  op: 'stats';
  requests: number;
  hits: number;
  misses: number;
  errors: number;
  /** Device round trips the shim made (every domain). */
  roundTrips: number;
  /** Bytes the device brought in. */
  bytes: number;
}

export type ControlRequest = { op: 'config' } | MissReport | ShimStats;

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A name the init may `export` (and not one the run itself sets). */
export function isEnvName(name: string): boolean {
  return ENV_NAME.test(name);
}

function object(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidConfigError(`${what}: expected a JSON object`);
  return value as Record<string, unknown>;
}

function strings(value: unknown, what: string): string[] {
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new InvalidConfigError(`${what}: expected an array of strings`);
  return value;
}

/** Checks a RunConfig (what the guest got, or what the host is about to send). */
export function asRunConfig(value: unknown): RunConfig {
  const o = object(value, 'run config');
  if (o['v'] !== RUN_CONFIG_VERSION) throw new InvalidConfigError(`run config: version ${JSON.stringify(o['v'])} (expected ${RUN_CONFIG_VERSION})`);
  const mode = o['mode'];
  if (mode !== 'replay' && mode !== 'record') throw new InvalidConfigError(`run config: mode ${JSON.stringify(mode)} (expected "replay" or "record")`);
  const root = o['netlockRoot'];
  if (root !== undefined && typeof root !== 'string') throw new InvalidConfigError('run config: netlockRoot must be a CID string');
  if (mode === 'replay' && root === undefined) throw new InvalidConfigError('run config: replay needs netlockRoot');
  const time = o['time'];
  if (typeof time !== 'number' || !Number.isSafeInteger(time) || time < 0) throw new InvalidConfigError(`run config: time ${JSON.stringify(time)} (expected unix seconds)`);
  const argv = strings(o['argv'], 'run config argv');
  if (argv.length === 0) throw new InvalidConfigError('run config: argv is empty');
  const envObject = object(o['env'], 'run config env');
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(envObject)) {
    if (!isEnvName(k) || typeof v !== 'string') throw new InvalidConfigError(`run config: env ${JSON.stringify(k)} must be NAME (letters, digits, _) = string`);
    env[k] = v;
  }
  if (typeof o['input'] !== 'boolean' || typeof o['output'] !== 'boolean') throw new InvalidConfigError('run config: input and output must be booleans');
  return {
    v: RUN_CONFIG_VERSION,
    mode,
    ...(root === undefined ? {} : { netlockRoot: root }),
    trust: strings(o['trust'], 'run config trust'),
    time,
    argv,
    env,
    input: o['input'],
    output: o['output'],
  };
}

function count(o: Record<string, unknown>, key: string): number {
  const v = o[key];
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) throw new DeviceError(`control stats: ${key} must be a count`);
  return v;
}

/** Reads a control request id (host side); DeviceError, refused in band, when it is not one. */
export function parseControlRequest(id: Uint8Array): ControlRequest {
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(id));
  } catch (err) {
    throw new DeviceError(`Malformed control request (GIO 0x27, ${id.byteLength} bytes): not UTF-8 JSON: ${(err as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new DeviceError('Malformed control request (GIO 0x27): not a JSON object');
  const o = value as Record<string, unknown>;
  switch (o['op']) {
    case 'config':
      return { op: 'config' };
    case 'miss': {
      const { method, url, accept } = o;
      if (typeof method !== 'string' || typeof url !== 'string' || typeof accept !== 'string' || !Array.isArray(o['nearest'])) {
        throw new DeviceError('Malformed control request (GIO 0x27 miss): needs method, url, accept, nearest');
      }
      const nearest = (o['nearest'] as unknown[]).flatMap((n) => {
        const c = n as { method?: unknown; url?: unknown; differs?: unknown } | null;
        if (c === null || typeof c !== 'object' || typeof c.method !== 'string' || typeof c.url !== 'string' || !Array.isArray(c.differs)) return [];
        return [{ method: c.method, url: c.url, differs: c.differs.filter((d): d is string => typeof d === 'string') }];
      });
      return { op: 'miss', method, url, accept, nearest };
    }
    case 'stats':
      return { op: 'stats', requests: count(o, 'requests'), hits: count(o, 'hits'), misses: count(o, 'misses'), errors: count(o, 'errors'), roundTrips: count(o, 'roundTrips'), bytes: count(o, 'bytes') };
    default:
      throw new DeviceError(`Unknown control request op ${JSON.stringify(o['op'])} (GIO 0x27 knows config, miss, stats)`);
  }
}

/** The id bytes of a control request (guest side). */
export function encodeControlRequest(request: ControlRequest): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(request));
}
