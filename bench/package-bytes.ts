// Deterministic "tarball" bytes for the seed benchmark (bench/seed.ts): package i has a size between 4 KiB and
// ~196 KiB (mean ~100 KiB, like registry tarballs) and distinct pseudo-random content, so nothing deduplicates.

/** Byte size of package `i`. */
export function packageSize(i: number): number {
  return 4096 + ((i * 2654435761) >>> 0) % (192 * 1024);
}

/** The bytes of package `i` (xorshift32 seeded by i; fast enough to serve and to hash in a benchmark). */
export function packageBytes(i: number): Buffer {
  return seededBytes(i, packageSize(i));
}

/** Size of every body of bench/entries.ts: a small body, as most of a build's requests are. */
export const ENTRY_BYTES = 4096;

/** The body of entry `i` of bench/entries.ts: 4 KiB, distinct from every other entry's. */
export function entryBytes(i: number): Buffer {
  return seededBytes(i, ENTRY_BYTES);
}

function seededBytes(i: number, n: number): Buffer {
  const buf = Buffer.allocUnsafe(n + 3 - ((n + 3) % 4));
  let x = (i * 747796405 + 2891336453) >>> 0 || 1;
  for (let o = 0; o < buf.length; o += 4) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    buf.writeUInt32LE(x, o);
  }
  return buf.subarray(0, n);
}
