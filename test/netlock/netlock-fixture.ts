/**
 * Builds real netlocks for tests and benchmarks: records signed by a LocalSigner, bodies imported as
 * UnixFS (IPIP-499 profile) with their sha256/sha512, the netlock DAG from buildNetlockFile — the same
 * blocks a record run writes, without a proxy.
 */
import { createCipheriv, createHash } from 'node:crypto';
import { CID } from 'multiformats/cid';
import type { BlockSink } from '../../src/protocol/blocks.ts';
import { encodeRecord } from '../../src/protocol/record.ts';
import type { FetchRecord } from '../../src/protocol/record.ts';
import { computeRequestKey } from '../../src/protocol/request-key.ts';
import { importBody } from '../../src/protocol/unixfs.ts';
import { buildNetlockFile } from '../../src/netlock/file.ts';
import type { DecodedEntry, NetlockFile } from '../../src/netlock/file.ts';
import { LocalSigner } from '../../src/signing/local-signer.ts';

export const MiB = 1024 * 1024;

/** Deterministic pseudo-random bytes (AES-128-CTR keystream of `seed`), in pieces that do not align to 1 MiB. */
// eslint-disable-next-line @typescript-eslint/require-await -- bodies are consumed as AsyncIterables; the keystream itself is synchronous
export async function* pseudoRandomBytes(seed: string, length: number, pieceBytes = 192 * 1024 + 17): AsyncGenerator<Uint8Array> {
  const key = createHash('sha256').update(seed).digest();
  const cipher = createCipheriv('aes-128-ctr', key.subarray(0, 16), key.subarray(16, 32));
  const zeros = new Uint8Array(pieceBytes);
  for (let done = 0; done < length; ) {
    const n = Math.min(pieceBytes, length - done);
    yield new Uint8Array(cipher.update(n === pieceBytes ? zeros : zeros.subarray(0, n)));
    done += n;
  }
}

export interface FixtureResponse {
  url: string;
  status?: number;
  accept?: string;
  /** Body length (pseudo-random bytes from `seed`), or null for a response without a body. */
  bodyBytes: number | null;
  /** Seed of the body bytes; two responses with one seed share their body blocks. @default url */
  seed?: string;
}

export interface FixtureNetlock {
  root: CID;
  file: NetlockFile;
  signer: LocalSigner;
  entries: DecodedEntry[];
  /** CIDs of the bodies, by URL. */
  bodies: Map<string, CID | null>;
}

export const FIXTURE_SEED = new Uint8Array(32).fill(7);

/** Records every response (signed by `signer`), imports the bodies into `sink` and builds the netlock there. */
export async function buildFixtureNetlock(responses: readonly FixtureResponse[], sink: BlockSink, signer = LocalSigner.fromSeed(FIXTURE_SEED)): Promise<FixtureNetlock> {
  const entries: DecodedEntry[] = [];
  const bodies = new Map<string, CID | null>();
  for (const r of responses) {
    const key = computeRequestKey({ method: 'GET', url: r.url, headers: { accept: r.accept ?? '*/*' } });
    let body: CID | null = null;
    const sha256 = createHash('sha256');
    const sha512 = createHash('sha512');
    if (r.bodyBytes !== null) {
      const hashed = async function* (): AsyncGenerator<Uint8Array> {
        for await (const chunk of pseudoRandomBytes(r.seed ?? r.url, r.bodyBytes!)) {
          sha256.update(chunk);
          sha512.update(chunk);
          yield chunk;
        }
      };
      body = (await importBody(hashed(), sink)).cid;
    }
    bodies.set(r.url, body);
    const record: FetchRecord = {
      v: 1,
      request: { method: key.method, url: key.url, headers: key.variant },
      response: {
        status: r.status ?? (r.bodyBytes === null ? 204 : 200),
        headers: [['content-type', 'application/octet-stream']],
        body,
        size: r.bodyBytes ?? 0,
        sha256: new Uint8Array(sha256.digest()),
        sha512: new Uint8Array(sha512.digest()),
      },
      fetchedAt: '2026-01-02T03:04:05.000Z',
      oracle: signer.publicKey,
    };
    const block = await encodeRecord(record);
    await sink.put(block.cid, block.bytes);
    entries.push({ key: key.id, signed: await signer.sign(block.cid), record });
  }
  const file = await buildNetlockFile(entries, sink);
  return { root: CID.parse(file.netlock), file, signer, entries, bodies };
}

/** `count` small responses (a few hundred bytes each) on one host: a many-entry netlock. */
export function manySmallResponses(count: number, bodyBytes = 512): FixtureResponse[] {
  return Array.from({ length: count }, (_, i) => ({ url: `https://registry.example/pkg/${String(i).padStart(6, '0')}.tgz`, bodyBytes }));
}
