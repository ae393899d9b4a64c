import { createHash } from 'node:crypto';
import { asOracleError, BlockCorruptError } from '../errors.ts';
import type { CID } from 'multiformats/cid';
import type { AbortOptions, BlockSource } from '../protocol/blocks.ts';
import { equalBytes, verifyingSource } from '../protocol/blocks.ts';
import { NetlockReader } from './dag.ts';
import { parseKeyId } from '../protocol/request-key.ts';
import type { RequestKey } from '../protocol/request-key.ts';
import { toHex } from '../protocol/signature.ts';
import { readBody } from '../protocol/unixfs.ts';
import { loadVerifiedRecord } from '../protocol/verify-record.ts';
import { AttestationChecker } from './verify-attested.ts';
import type { AttestationPolicy, AttestationSummary } from './verify-attested.ts';

export interface VerifyFailure {
  /** `METHOD url` of the entry (or `netlock` for the DAG itself). */
  entry: string;
  code: string;
  message: string;
}

export interface VerifyReport {
  root: string;
  entries: number;
  bodyBytes: number;
  oracles: string[];
  failures: VerifyFailure[];
  /** With `attested`: the attestation documents that bound the records (verify --attested). */
  attestations?: AttestationSummary[];
}

export interface VerifyNetlockOptions extends AbortOptions {
  /** Accept a record only when its key is bound by a valid attestation document matching this policy. */
  attested?: AttestationPolicy;
}

export function keyFromId(id: string): RequestKey {
  const k = parseKeyId(id);
  return { method: k.method, url: k.url, variant: k.variant, id, ...(k.bodyDigest === '' ? {} : { bodyDigest: k.bodyDigest }) };
}

/**
 * Checks a whole netlock: every index page and record block hashes to its CID, every record is signed by
 * its oracle key (and that key is trusted, when `trusted` is given), every record answers its key, and
 * every body block is present, hashes to its CID, and the body matches the record's size and sha256.
 */
export async function verifyNetlock(root: CID, store: BlockSource, trusted: readonly Uint8Array[] | undefined, options: VerifyNetlockOptions = {}): Promise<VerifyReport> {
  const source = verifyingSource(store);
  const attested = options.attested === undefined ? undefined : new AttestationChecker(options.attested, store);
  const reader = new NetlockReader(root, source);
  const report: VerifyReport = { root: root.toString(), entries: 0, bodyBytes: 0, oracles: [], failures: [] };
  let rootValue;
  try {
    rootValue = await reader.rootValue(options);
  } catch (err) {
    report.failures.push({ entry: 'netlock', code: codeOf(err), message: (err as Error).message });
    return report;
  }
  report.oracles = rootValue.oracles.map(toHex);
  const keys = trusted ?? rootValue.oracles;
  try {
    for await (const entry of reader.entries(options)) {
      report.entries++;
      const key = keyFromId(entry.key);
      const name = `${key.method} ${key.url}`;
      try {
        const record = await loadVerifiedRecord(entry.signed, key, store, keys);
        await attested?.check(record, entry.signed.record, options);
        if (record.response.body !== null) {
          const hash = createHash('sha256');
          let size = 0;
          for await (const chunk of readBody(record.response.body, source, options)) {
            hash.update(chunk);
            size += chunk.byteLength;
          }
          report.bodyBytes += size;
          if (size !== record.response.size || !equalBytes(new Uint8Array(hash.digest()), record.response.sha256)) {
            throw new BlockCorruptError(record.response.body.toString(), `Body ${record.response.body} has ${size} bytes / sha256 not matching the record (${record.response.size} bytes, sha256 ${toHex(record.response.sha256)})`);
          }
        }
      } catch (err) {
        report.failures.push({ entry: name, code: codeOf(err), message: (err as Error).message });
      }
    }
  } catch (err) {
    report.failures.push({ entry: 'netlock index', code: codeOf(err), message: (err as Error).message });
  }
  if (attested !== undefined) report.attestations = attested.summaries();
  if (report.entries !== rootValue.count) {
    report.failures.push({ entry: 'netlock', code: 'ORACLE_ERR_INVALID_NETLOCK', message: `Root says ${rootValue.count} entries, index holds ${report.entries}` });
  }
  return report;
}

function codeOf(err: unknown): string {
  return asOracleError(err).code;
}
