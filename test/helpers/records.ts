import { createHash } from 'node:crypto';
import { CID } from 'multiformats/cid';
import { sha256 } from 'multiformats/hashes/sha2';
import type { FetchRecord } from '../../src/protocol/record.ts';

/**
 * A record of a GET of `url` answered with `body` (text) and `headers`, as replay plans from: its body CID and
 * digests those of `body`, fetched at 2024-02-03T04:05:06Z by an all-zero oracle key (nothing checks it).
 */
export async function textRecord(body: string, url: string, headers: Array<[string, string]>, status = 200): Promise<FetchRecord> {
  return {
    v: 1,
    request: { method: 'GET', url, headers: { accept: '*/*' } },
    response: {
      status,
      headers,
      body: CID.createV1(0x55, await sha256.digest(Buffer.from(body))),
      size: body.length,
      sha256: new Uint8Array(createHash('sha256').update(body).digest()),
      sha512: new Uint8Array(createHash('sha512').update(body).digest()),
    },
    fetchedAt: '2024-02-03T04:05:06.000Z',
    oracle: new Uint8Array(32),
  };
}
