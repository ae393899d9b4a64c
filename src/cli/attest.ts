import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { attestationToJson, decodeAttestation, parseAttestationInput, verifyAttestation } from '../attestation/index.ts';
import type { VerifyAttestationOptions } from '../attestation/index.ts';
import { OracleError } from '../errors.ts';
import { fromHex } from '../protocol/signature.ts';

export const ATTEST_HELP = `Usage: fetch-oracle attest verify FILE [--at RFC3339] [--pcr0 HEX] [--pcr1 HEX] [--pcr2 HEX] [--pcr8 HEX] [--allow-debug]

Verifies an AWS Nitro Enclave attestation document (raw CBOR, base64 or hex, detected): the COSE_Sign1 ES384
signature over the original bytes, the certificate chain to the pinned AWS Nitro root (by DER fingerprint),
validity at the document's own time (or --at), expected PCRs, and no debug mode (unless --allow-debug).
Prints the decoded fields as JSON (module_id, timestamp, digest, pcrs, public_key, user_data, nonce as hex).
Exits 0 only when the document is valid; 1 with the reason otherwise.

Options:
  --at RFC3339       verify the certificates as of this time instead of the document's timestamp
  --pcrN HEX         expected value of PCR N (48 bytes, hex) for N in 0, 1, 2, 3, 4, 8
  --allow-debug      accept a debug-mode document (PCR0/1/2 all zero): for tests only
  --decode-only      print the fields without verifying (exit 0 if the document parses)
`;

/** `fetch-oracle attest verify …`; returns the exit code. */
export async function runAttest(args: string[], out: (text: string) => void): Promise<number> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    out(ATTEST_HELP);
    return sub === undefined ? 2 : 0;
  }
  if (sub !== 'verify') throw new Error(`Unknown attest command ${JSON.stringify(sub)}\n\n${ATTEST_HELP}`);
  const pcrFlags = ['0', '1', '2', '3', '4', '8'] as const;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    strict: true,
    options: {
      at: { type: 'string' },
      'allow-debug': { type: 'boolean' },
      'decode-only': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
      ...Object.fromEntries(pcrFlags.map((n) => [`pcr${n}`, { type: 'string' as const }])),
    },
  });
  if (values['help'] === true) {
    out(ATTEST_HELP);
    return 0;
  }
  const file = positionals[0];
  if (file === undefined || positionals.length > 1) throw new Error(`attest verify takes one FILE\n\n${ATTEST_HELP}`);
  const bytes = parseAttestationInput(new Uint8Array(await readFile(file)));
  if (values['decode-only'] === true) {
    out(`${JSON.stringify(attestationToJson(decodeAttestation(bytes)), null, 2)}\n`);
    return 0;
  }
  const options: VerifyAttestationOptions = {};
  const at = values['at'];
  if (typeof at === 'string') {
    const t = Date.parse(at);
    if (Number.isNaN(t)) throw new Error(`--at expects an RFC 3339 time, got ${JSON.stringify(at)}`);
    options.at = new Date(t);
  }
  if (values['allow-debug'] === true) options.allowDebug = true;
  const expected: Record<number, Uint8Array> = {};
  for (const n of pcrFlags) {
    const v = (values as Record<string, unknown>)[`pcr${n}`];
    if (typeof v === 'string') expected[Number(n)] = fromHex(v.trim().replace(/^0x/, ''), 48);
  }
  if (Object.keys(expected).length > 0) options.expectedPcrs = expected;
  try {
    const doc = await verifyAttestation(bytes, options);
    out(`${JSON.stringify({ valid: true, ...attestationToJson(doc) }, null, 2)}\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof OracleError)) throw err;
    out(`${JSON.stringify({ valid: false, code: err.code, message: err.message }, null, 2)}\n`);
    return 1;
  }
}
