/** `fetch-oracle verify`: a netlock's signatures, blocks and bodies checked (and, with --attested, its keys). */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Command, CommandContext } from './command.ts';
import { parseQuorum, parseTrustedKeys, UsageError } from './common.ts';
import { parseOptions, str, strs } from './options.ts';
import { InvalidConfigError } from '../errors.ts';
import { renderVerifyText, verifyNetlockPath } from '../netlock/verify-file.ts';
import type { AttestationPolicy } from '../netlock/verify-attested.ts';
import { fromHex } from '../protocol/signature.ts';
import { FsBlockStore } from '../store/fs-block-store.ts';
import { createBlockStore, KUBO_FETCH_TIMEOUT_MS } from '../store/index.ts';
import { parseDuration } from './front-flags.ts';

export const VERIFY_ATTESTED_HELP = `  --attested             accept a record only if its key is the public_key of a valid Nitro attestation
                         document it names (verified as of the document's own time, root pinned)
  --pcr0 HEX / --pcr1 HEX / --pcr2 HEX / --pcr8 HEX
                         expected PCRs of the enclave image (--pcr0 required with --attested)
  --user-data HEX        expected user_data (the enclave configuration digest)
  --allow-debug          accept debug-mode documents (tests only)
  --attestation-root PEM trust this root instead of the AWS Nitro root (tests with a simulated NSM only)
`;

/** The parseArgs options `verify` adds for --attested. */
export const VERIFY_ATTESTED_OPTIONS = {
  attested: { type: 'boolean' },
  pcr0: { type: 'string' },
  pcr1: { type: 'string' },
  pcr2: { type: 'string' },
  pcr8: { type: 'string' },
  'user-data': { type: 'string' },
  'allow-debug': { type: 'boolean' },
  'attestation-root': { type: 'string' },
} as const;

function hexFlag(values: Record<string, unknown>, name: string, bytes?: number): Uint8Array | undefined {
  const v = values[name];
  if (typeof v !== 'string') return undefined;
  try {
    return fromHex(v.trim().replace(/^0x/i, ''), bytes);
  } catch {
    throw new InvalidConfigError(`--${name} expects ${bytes === undefined ? 'hex' : `${bytes} bytes of hex (${bytes * 2} digits)`}, got ${JSON.stringify(v.slice(0, 120))}`);
  }
}

/** The attestation policy of `verify --attested …`, or undefined without --attested. */
export async function attestedPolicyFromFlags(values: Record<string, unknown>): Promise<AttestationPolicy | undefined> {
  const attestedFlags = ['pcr0', 'pcr1', 'pcr2', 'pcr8', 'user-data', 'allow-debug', 'attestation-root'].filter((f) => values[f] !== undefined);
  if (values['attested'] !== true) {
    if (attestedFlags.length > 0) throw new InvalidConfigError(`--${attestedFlags[0]} applies only with --attested`);
    return undefined;
  }
  const expectedPcrs: Record<number, Uint8Array> = {};
  for (const n of [0, 1, 2, 8]) {
    const v = hexFlag(values, `pcr${n}`, 48);
    if (v !== undefined) expectedPcrs[n] = v;
  }
  if (expectedPcrs[0] === undefined) throw new InvalidConfigError('--attested needs --pcr0 HEX (the enclave image measurement): an empty policy would accept any image');
  const userData = hexFlag(values, 'user-data');
  const rootPath = values['attestation-root'];
  return {
    expectedPcrs,
    ...(values['allow-debug'] === true ? { allowDebug: true } : {}),
    ...(userData === undefined ? {} : { expectedUserData: userData }),
    ...(typeof rootPath === 'string' ? { rootCertPem: await readFile(rootPath, 'utf8') } : {}),
  };
}

export const VERIFY_HELP = `Usage: fetch-oracle verify FILE [--data DIR] [--trust KEY]... [--quorum K] [--json] [--attested --pcr0 HEX …]

Checks every record signature, that every block is present and hashes to its CID, that every body
matches its record's size and sha256, and that every field of the readable file (count, oracle keys, variant
rules, each entry's url, status, body, size, sha256, record and signature) is what the signed DAG under its
root says. Prints a summary; exits 1 naming each failing entry and field. Without --trust any key the
netlock names is accepted, and the summary says so.

Options:
  --data DIR             data directory holding the blocks (default as for record)
  --trust KEY            accept only records signed by these keys (hex; repeatable; default: the keys the
                         netlock names, which are listed in the summary)
  --quorum K             accept an entry only when K distinct trusted keys signed its record CID: its oracle's
                         record signature and witnesses' countersignatures (fetch-oracle witness); needs
                         at least K --trust keys when K > 1 (default 1). Entries whose oracles saw other
                         bytes or another status are named (DISAGREE), and keys not counted are said
  --json                 print the report as JSON
  --ipfs URL             check the blocks in Kubo (its RPC API) instead of the data directory; blocks the daemon
                         lacks are fetched from its peers over bitswap unless it runs --offline. FILE may be
                         ipfs://CID (the root alone)
  --ipfs-timeout DUR     longest wait for one block from Kubo's peers (default ${KUBO_FETCH_TIMEOUT_MS / 1000}s)
${VERIFY_ATTESTED_HELP}  -h, --help             show this help
`;

export const verifyCommand: Command = {
  help: VERIFY_HELP,
  run: runVerify,
};

export async function runVerify(args: string[], context: CommandContext): Promise<number> {
  const { values, positionals } = parseOptions(args, { trust: { type: 'string', multiple: true }, quorum: { type: 'string' }, json: { type: 'boolean' }, ipfs: { type: 'string' }, 'ipfs-timeout': { type: 'string' }, ...VERIFY_ATTESTED_OPTIONS }, VERIFY_HELP);
  const out = context.stdout;
  if (values['help'] === true) {
    out.write(VERIFY_HELP);
    return 0;
  }
  const file = positionals[0];
  if (file === undefined || positionals.length > 1) throw new UsageError(`verify takes one netlock FILE\n\n${VERIFY_HELP}`);
  const dataDir = resolve(str(values['data']) ?? context.defaultDataDir);
  const trust = strs(values['trust']);
  const quorum = parseQuorum(str(values['quorum']), trust);
  // Against Kubo, no cache in front: a block Kubo lost must be reported, not served from the cache.
  const ipfs = str(values['ipfs']);
  const timeout = str(values['ipfs-timeout']);
  if (timeout !== undefined && ipfs === undefined) throw new UsageError('--ipfs-timeout applies only with --ipfs URL');
  // Blocks the daemon lacks may come from its peers (a netlock recorded elsewhere): what verify checks is the
  // bytes, whoever held them.
  const fetchTimeoutMs = timeout === undefined ? KUBO_FETCH_TIMEOUT_MS : parseDuration(timeout, '--ipfs-timeout');
  const store = ipfs === undefined ? new FsBlockStore(dataDir) : createBlockStore({ ipfs, cache: false, fetchTimeoutMs });
  const attested = await attestedPolicyFromFlags(values);
  const report = await verifyNetlockPath(file, store, trust.length === 0 ? undefined : parseTrustedKeys(trust), { quorum, ...(attested === undefined ? {} : { attested }) });
  if ('close' in store && typeof store.close === 'function') await store.close();
  if (values['json'] === true) {
    out.write(`${JSON.stringify(report, null, 2)}\n`);
  } else {
    out.write(renderVerifyText(report, attested !== undefined));
  }
  return report.failures.length === 0 ? 0 : 1;
}
