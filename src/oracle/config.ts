import { InvalidConfigError } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { VariantRules } from '../protocol/request-key.ts';
import type { ListenAddress } from '../io/listen.ts';
import type { SyncPolicy } from './checkpoints.ts';
import type { Signer } from '../signing/signer.ts';
import type { ProxyAddress } from '../upstream/connect-tunnel.ts';
import { validateAdminExposure, validateExposure } from '../config/exposure.ts';
import type { Exposure } from '../config/exposure.ts';
import type { ProxyLimits } from '../proxy/limits.ts';

/** What both modes share. */
interface OracleInitBase {
  /** Data directory: blocks, record index, oracle key, CA. */
  dataDir: string;
  /** Proxy address: `{host, port}` (port 0 picks one) or a unix socket `{path}`. */
  listen: ListenAddress | { path: string };
  /** Kubo RPC API URL: every block also goes to Kubo (the data directory stays as its cache) and each record's
   * DAG and the netlock root are pinned there. @default none (embedded store only) */
  ipfs?: string;
  /** Admin API address. @default none */
  admin?: ListenAddress;
  /** Bearer token for the admin API (required off loopback). */
  adminToken?: string;
  /** The proxy front's header and idle timeouts and connection cap. @default see src/proxy/limits.ts */
  limits?: ProxyLimits;
  /** Off-loopback listening and proxy credentials (src/config/exposure.ts). @default loopback only, no credentials */
  exposure?: Exposure;
  /** @default NOOP_LOGGER */
  logger?: Logger;
}

/** Record mode: new requests are fetched once and recorded; recorded ones are answered from their record. */
export interface RecordInit extends OracleInitBase {
  mode: 'record';
  /** Where the netlock of this run is written on close (its journal sits beside it). @default none */
  netlockPath?: string;
  /** Extra variant headers per host, e.g. `{ 'registry.example': ['x-api-version'] }`. @default none */
  variantRules?: VariantRules;
  /** Fetch every recorded request again once per run; changed answers become new versions. @default false */
  refresh?: boolean;
  /** Extra CA certificates (PEM) the upstream client trusts. @default none */
  upstreamCaPem?: readonly string[];
  /**
   * Sign with this key instead of the data directory's key file (enclave mode: a key born in the enclave,
   * held only in memory, whose records carry its attestation CID). @default LocalSigner of dataDir
   */
  signer?: Signer;
  /** Reach origins through this HTTP CONNECT proxy; TLS still ends here. @default direct */
  upstreamProxy?: ProxyAddress;
  /** Record answer-less upstream failures as 502 records (off in enclave mode). @default true */
  recordUpstreamFailures?: boolean;
  /** Longest wait for an origin's connection, head, or next body bytes. @default 60 s (src/upstream/safe-dispatcher.ts) */
  upstreamTimeoutMs?: number;
  /** When what a record wrote goes on disk (`--sync`): before its answer ends, or at checkpoints. @default a checkpoint a second at most */
  sync?: SyncPolicy;
}

/** Replay mode: answers only from a netlock, fail-closed; no upstream client at all. */
export interface ReplayInit extends OracleInitBase {
  mode: 'replay';
  /** The netlock to serve. */
  netlockPath: string;
  /** Oracle public keys whose records are accepted. @default the data directory's own key */
  trust?: readonly Uint8Array[];
  /** With `ipfs`: how long Kubo may look for a block it lacks among its peers (bitswap), in ms. @default KUBO_FETCH_TIMEOUT_MS */
  ipfsFetchTimeoutMs?: number;
  /** Distinct trusted keys that must have signed a record (its oracle and witnesses) before it is served. @default 1 */
  quorum?: number;
}

export type OracleInit = RecordInit | ReplayInit;

const RECORD_ONLY = ['variantRules', 'refresh', 'upstreamCaPem', 'signer', 'upstreamProxy', 'recordUpstreamFailures', 'upstreamTimeoutMs', 'sync'] as const;
const REPLAY_ONLY = ['trust', 'ipfsFetchTimeoutMs', 'quorum'] as const;

/** Checks an OracleInit once, before anything starts; InvalidConfigError names the field. */
export function validateOracleInit(init: OracleInit): OracleInit {
  const given = init as unknown as Record<string, unknown>;
  if (typeof init.dataDir !== 'string' || init.dataDir === '') throw new InvalidConfigError('dataDir: a data directory is required');
  if (typeof init.listen !== 'object' || init.listen === null) throw new InvalidConfigError('listen: expected {host, port} or {path}');
  if (init.mode === 'replay') {
    if (init.netlockPath === undefined) throw new InvalidConfigError('Replay mode needs a netlock (--netlock FILE)');
    for (const field of RECORD_ONLY) if (given[field] !== undefined) throw new InvalidConfigError(`${field}: a record-mode option (replay never fetches)`);
    if (init.quorum !== undefined && (!Number.isSafeInteger(init.quorum) || init.quorum < 1)) throw new InvalidConfigError(`quorum: ${String(init.quorum)} (expected a positive integer)`);
  } else if (init.mode === 'record') {
    for (const field of REPLAY_ONLY) if (given[field] !== undefined) throw new InvalidConfigError(`${field}: a replay-mode option`);
  } else {
    throw new InvalidConfigError(`mode: ${JSON.stringify((init as { mode: unknown }).mode)} (expected 'record' or 'replay')`);
  }
  // Everything about who can reach the proxy and the admin API is settled before either listens.
  validateExposure(init.listen, init.exposure);
  if (init.admin !== undefined) validateAdminExposure(init.admin, init.adminToken);
  return init;
}
