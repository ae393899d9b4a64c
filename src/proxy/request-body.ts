import { randomBytes } from 'node:crypto';
import type { Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { open, rm } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import type { IncomingMessage } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BadRequestError } from '../errors.ts';
import { MAX_REQUEST_BODY_BYTES } from './exchange.ts';
import type { RequestBody } from './exchange.ts';

/**
 * Request bodies the record side keeps (to send upstream): up to SPOOL_THRESHOLD_BYTES in memory, larger
 * ones in a temporary file (memory stays flat) streamed upstream from there. Kept apart from `exchange.ts`
 * so that replay (host and guest) never reaches code that writes to the file system.
 */
export const SPOOL_THRESHOLD_BYTES = 1024 * 1024;

/** Reads, hashes and keeps a request body (spooling large ones); undefined for an empty body. */
export async function spoolRequestBody(req: IncomingMessage, hash: Hash): Promise<RequestBody | undefined> {
  const chunks: Buffer[] = [];
  let total = 0;
  let spool: { path: string; file: FileHandle } | undefined;
  try {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      total += chunk.byteLength;
      if (total > MAX_REQUEST_BODY_BYTES) throw new BadRequestError(`Request body exceeds the ${MAX_REQUEST_BODY_BYTES}-byte limit`, 413);
      hash.update(chunk);
      if (spool === undefined && total > SPOOL_THRESHOLD_BYTES) {
        const path = join(tmpdir(), `fetch-oracle-body-${process.pid}-${randomBytes(8).toString('hex')}`);
        spool = { path, file: await open(path, 'wx', 0o600) };
        for (const c of chunks.splice(0)) await spool.file.write(c);
      }
      if (spool === undefined) chunks.push(chunk);
      else await spool.file.write(chunk);
    }
  } catch (err) {
    if (spool !== undefined) {
      await spool.file.close();
      await rm(spool.path, { force: true });
    }
    throw err;
  }
  if (total === 0) return undefined;
  if (spool === undefined) {
    const bytes = Buffer.concat(chunks, total);
    return { size: total, open: () => bytes, dispose: () => Promise.resolve() };
  }
  await spool.file.close();
  const path = spool.path;
  return { size: total, open: () => createReadStream(path), dispose: () => rm(path, { force: true }) };
}
