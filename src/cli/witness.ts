/** `fetch-oracle witness`: a second oracle fetches a netlock's entries again and countersigns what it also got. */
import { resolve } from 'node:path';
import { CID } from 'multiformats/cid';
import type { Command, CommandContext } from './command.ts';
import { stderrLogger, UsageError } from './common.ts';
import { parseOptions, str, strs } from './options.ts';
import { netlockRootOf, writeNetlockFile } from '../netlock/file.ts';
import { witnessNetlock } from '../oracle/witness.ts';
import type { WitnessResult } from '../oracle/witness.ts';
import { LocalSigner } from '../signing/local-signer.ts';
import { createBlockStore } from '../store/index.ts';
import { readUpstreamCaPem } from '../upstream/fetcher.ts';

export const WITNESS_HELP = `Usage: fetch-oracle witness NETLOCK --out WITNESSED [--data DIR] [--key KEYFILE] [--upstream-ca FILE]... [--json]

Fetches every entry of NETLOCK again, as this oracle (its own key and upstream), and countersigns each record
whose status and body bytes it also got. Writes WITNESSED: the same entries and records with the
countersignatures added, naming the original oracles' keys and the witness's. An entry it got something else
for carries the witness's countersignature of its own record instead (verify and replay name the disagreement);
entries it could not reproduce are listed with the reason (different-bytes, different-status, unreachable,
not-reproducible). Exits 0 when every entry was countersigned, 1 when some were not (WITNESSED is written
either way). NETLOCK's blocks must be in the data directory: 'fetch-oracle import NETLOCK.car --data DIR' first.
Check the result with 'fetch-oracle verify WITNESSED --quorum 2 --trust KEY --trust KEY'.

Options:
  --out FILE             where the witnessed netlock goes (required)
  --data DIR             the witness's data directory: its blocks, records and (without --key) its key
  --key KEYFILE          the witness's key file ({"seed": <64 hex>}, as oracle-key.json; default: the data
                         directory's own key, created on first use)
  --upstream-ca FILE     extra PEM CA the upstream client trusts (repeatable)
  --json                 print the report as JSON
  -h, --help             show this help
`;

export const witnessCommand: Command = {
  help: WITNESS_HELP,
  run: runWitness,
};

export async function runWitness(args: string[], context: CommandContext): Promise<number> {
  const { values, positionals } = parseOptions(args, { out: { type: 'string' }, key: { type: 'string' }, 'upstream-ca': { type: 'string', multiple: true }, json: { type: 'boolean' } }, WITNESS_HELP);
  if (values['help'] === true) {
    context.stdout.write(WITNESS_HELP);
    return 0;
  }
  const netlock = positionals[0];
  if (netlock === undefined || positionals.length > 1) throw new UsageError(`witness takes one NETLOCK\n\n${WITNESS_HELP}`);
  const out = str(values['out']);
  if (out === undefined) throw new UsageError(`witness needs --out WITNESSED\n\n${WITNESS_HELP}`);
  const dataDir = resolve(str(values['data']) ?? context.defaultDataDir);
  const logger = stderrLogger();
  const keyFile = str(values['key']);
  const signer = keyFile === undefined ? await LocalSigner.loadOrCreate(dataDir) : await LocalSigner.load(resolve(keyFile));
  const upstreamCaPem = await readUpstreamCaPem(strs(values['upstream-ca']), process.env['NODE_EXTRA_CA_CERTS'], (m) => logger.warn('%s', m));
  const root = await netlockRootOf(resolve(netlock));
  const store = createBlockStore({ dataDir, logger });
  try {
    const result = await witnessNetlock({ root, store, dataDir, signer, upstreamCaPem, logger });
    const file = await writeNetlockFile(resolve(out), result.decoded, store, result.variantRules === undefined ? {} : { variantRules: result.variantRules });
    // Pinned: the countersignatures and the witness's own records stay through gc.
    await store.pin(CID.parse(file.netlock), { recursive: true });
    await store.flush();
    if (values['json'] === true) {
      const { decoded: _decoded, ...report } = result;
      context.stdout.write(`${JSON.stringify({ ...report, out: resolve(out), netlock: file.netlock, oracles: file.oracles, witnesses: file.witnesses ?? [] }, null, 2)}\n`);
    } else {
      context.stdout.write(renderWitnessText(result, out, file.netlock, file.witnesses ?? []));
    }
    return result.notWitnessed.length === 0 ? 0 : 1;
  } finally {
    await store.close();
  }
}

function renderWitnessText(r: WitnessResult, out: string, netlock: string, witnesses: readonly string[]): string {
  const lines = [`witness ${r.witness} of netlock ${r.root}`, `  entries: ${r.entries}`, `  countersigned: ${r.countersigned} (same status and body bytes)`];
  for (const n of r.notWitnessed) lines.push(`NOT WITNESSED ${n.method} ${n.url}: ${n.reason}: ${n.message}`);
  lines.push(`wrote ${out}: netlock ${netlock}, witnesses ${witnesses.join(', ')}`);
  return `${lines.join('\n')}\n`;
}
