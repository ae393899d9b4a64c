/** `fetch-oracle attest verify`: one AWS Nitro Enclave attestation document, checked offline. */
import { readFile } from 'node:fs/promises';
import type { Command, CommandContext } from './command.ts';
import { parseCommandLine, UsageError } from './common.ts';
import { parseDurationFlag, parseTimeFlag } from './time-flags.ts';
import { AttestationError, attestationToJson, decodeAttestation, parseAttestationInput, verifyAttestation } from '../attestation/index.ts';
import type { AttestationDocument, VerifyAttestationOptions } from '../attestation/index.ts';
import { fromHex } from '../protocol/signature.ts';

const PCR_INDICES = [0, 1, 2, 3, 4, 8] as const;

/** The flags of `attest verify`; the usage line lists each of them (a test checks). */
export const ATTEST_VERIFY_OPTIONS = {
  at: { type: 'string' },
  'max-age': { type: 'string' },
  ...(Object.fromEntries(PCR_INDICES.map((n) => [`pcr${n}`, { type: 'string' }])) as Record<`pcr${(typeof PCR_INDICES)[number]}`, { type: 'string' }>),
  'allow-debug': { type: 'boolean' },
  'decode-only': { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const;

export const ATTEST_HELP = `Usage: fetch-oracle attest verify FILE [--at RFC3339|now] [--max-age DURATION] [--pcr0 HEX] [--pcr1 HEX] [--pcr2 HEX]
                                      [--pcr3 HEX] [--pcr4 HEX] [--pcr8 HEX] [--allow-debug]
       fetch-oracle attest verify FILE --decode-only
       fetch-oracle attest verify -h | --help

Verifies an AWS Nitro Enclave attestation document (raw CBOR, base64 or hex, detected): the COSE_Sign1 ES384
signature over the original bytes, the certificate chain to the pinned AWS Nitro root (by DER fingerprint),
validity at the document's own time (or --at), expected PCRs, freshness (--max-age), and no debug mode (unless
--allow-debug). Prints the decoded fields as JSON (module_id, timestamp, digest, pcrs, public_key, user_data,
nonce as hex).

Exit status: 0 when the document is valid; 1 when it is not, with {"valid": false, "code", "message"} as JSON
on stdout (a short or cut-off document is named "truncated: …"), or when FILE cannot be read; 2 for a usage
error, with this help on stderr.

Options:
  --at RFC3339|now   verify the certificates as of this time instead of the document's timestamp: an RFC 3339
                     time with Z or an offset (2024-09-07T14:40:00Z, 2024-09-07T16:40:00+02:00), or now
  --max-age DURATION the document's timestamp must be no older than DURATION at --at (default with --max-age:
                     --at now): an integer and a unit, ms, s, m, h or d (30s, 15m, 12h, 7d)
  --pcrN HEX         expected value of PCR N (48 bytes, hex) for N in 0, 1, 2, 3, 4, 8
  --allow-debug      accept a debug-mode document (PCR0/1/2 all zero): for tests only
  --decode-only      print the fields without verifying (exit 0 if the document parses); takes no other flag
  -h, --help         show this help
`;

export const attestCommand: Command = {
  help: ATTEST_HELP,
  run: runAttest,
};

/** `fetch-oracle attest verify …`; returns the exit code. */
export async function runAttest(args: string[], context: Pick<CommandContext, 'stdout'>): Promise<number> {
  const out = context.stdout;
  const [sub, ...rest] = args;
  if (sub === '--help' || sub === '-h' || sub === 'help') {
    out.write(ATTEST_HELP);
    return 0;
  }
  if (sub === undefined) throw new UsageError(`attest needs a command: attest verify FILE\n\n${ATTEST_HELP}`);
  if (sub !== 'verify') throw new UsageError(`Unknown attest command ${JSON.stringify(sub)} (verify)\n\n${ATTEST_HELP}`);
  const { values, positionals } = parseCommandLine({ args: rest, allowPositionals: true, strict: true, options: ATTEST_VERIFY_OPTIONS }, ATTEST_HELP);
  if (values.help === true) {
    out.write(ATTEST_HELP);
    return 0;
  }
  const file = positionals[0];
  if (file === undefined || positionals.length > 1) throw new UsageError(`attest verify takes one FILE\n\n${ATTEST_HELP}`);
  const decodeOnly = values['decode-only'] === true;
  const options = decodeOnly ? decodeOnlyFlags(values) : verifyOptionsOf(values);
  const input = new Uint8Array(await readFile(file));
  let document: AttestationDocument;
  try {
    const bytes = parseAttestationInput(input);
    document = options === undefined ? decodeAttestation(bytes) : await verifyAttestation(bytes, options);
  } catch (err) {
    if (!(err instanceof AttestationError)) throw err;
    out.write(`${JSON.stringify({ valid: false, code: err.code, message: err.message }, null, 2)}\n`);
    return 1;
  }
  out.write(`${JSON.stringify(options === undefined ? attestationToJson(document) : { valid: true, ...attestationToJson(document) }, null, 2)}\n`);
  return 0;
}

type Flags = Record<string, string | boolean | undefined>;

/** --decode-only verifies nothing, so a verification flag beside it would be silently ignored: refuse it. */
function decodeOnlyFlags(values: Flags): undefined {
  const ignored = Object.keys(values).filter((name) => name !== 'decode-only' && name !== 'help' && values[name] !== undefined);
  if (ignored.length > 0) throw new UsageError(`--decode-only does not verify, so --${ignored[0]} does not apply\n\n${ATTEST_HELP}`);
  return undefined;
}

function verifyOptionsOf(values: Flags): VerifyAttestationOptions {
  const options: VerifyAttestationOptions = {};
  const at = values['at'];
  const maxAge = values['max-age'];
  if (typeof at === 'string') options.at = parseTimeFlag(at, '--at');
  if (typeof maxAge === 'string') {
    options.maxAgeMs = parseDurationFlag(maxAge, '--max-age');
    // "Is it fresh?" asked without a time means now; against its own timestamp every document is fresh.
    options.at ??= new Date();
  }
  if (values['allow-debug'] === true) options.allowDebug = true;
  const expected: Record<number, Uint8Array> = {};
  for (const n of PCR_INDICES) {
    const v = values[`pcr${n}`];
    if (typeof v !== 'string') continue;
    try {
      expected[n] = fromHex(v.trim().replace(/^0x/i, ''), 48);
    } catch {
      throw new UsageError(`--pcr${n} expects 48 bytes of hex (96 digits), got ${JSON.stringify(v.slice(0, 120))}`);
    }
  }
  if (Object.keys(expected).length > 0) options.expectedPcrs = expected;
  return options;
}
