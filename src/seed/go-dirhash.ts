import { createHash } from 'node:crypto';
import { readZipFiles } from './zip-reader.ts';
import type { RangeReader } from './zip-reader.ts';

/**
 * Go's `h1:` hash (golang.org/x/mod/sumdb/dirhash Hash1): sha256 over the lines `"<sha256 hex>  <name>\n"`
 * of every file, names sorted bytewise; `h1:` + base64. For a module zip the names are the zip's (each under
 * `MODULE@VERSION/`, as dirhash.HashZip passes them); for a go.mod line the one name is `go.mod`.
 * Written here: no npm package implements dirhash (the zip itself is read by yauzl, zip-reader.ts).
 */
export function hash1(files: ReadonlyArray<{ name: string; sha256hex: string }>): string {
  const sorted = [...files].sort((a, b) => (Buffer.compare(Buffer.from(a.name), Buffer.from(b.name))));
  const h = createHash('sha256');
  for (const f of sorted) {
    if (f.name.includes('\n')) throw new Error(`dirhash: file name with a newline: ${JSON.stringify(f.name)}`);
    h.update(`${f.sha256hex}  ${f.name}\n`);
  }
  return `h1:${h.digest('base64')}`;
}

/** The go.sum `/go.mod h1:` hash of a .mod file's bytes. */
export function goModHash(bytes: Uint8Array): string {
  return hash1([{ name: 'go.mod', sha256hex: createHash('sha256').update(bytes).digest('hex') }]);
}

/**
 * The go.sum `h1:` hash of a module zip (dirhash.HashZip: every entry of the zip, directories included),
 * streamed entry by entry from `reader`. A zip that cannot be read throws InvalidArchiveError.
 */
export async function goZipHash(reader: RangeReader): Promise<string> {
  const files: Array<{ name: string; sha256hex: string }> = [];
  for await (const file of readZipFiles(reader)) {
    const h = createHash('sha256');
    for await (const chunk of file.content) h.update(chunk);
    files.push({ name: file.name, sha256hex: h.digest('hex') });
  }
  return hash1(files);
}
