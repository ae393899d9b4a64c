import { CID } from 'multiformats/cid';

/**
 * A CID as the key of a Map or Set that may hold many: its bytes, one character each. `cid.toString()` is
 * built by multiformats one base32 character at a time, and V8 keeps such a string as a tree of ~60 pieces:
 * kept as a key, ~1.7 KB a CID (an `export --car` of a 100,000-entry netlock grew to 280 MB, issue #15). This
 * string is flat, 36 characters for a CIDv1 of SHA-256: equal for equal CIDs and distinct for distinct ones
 * (the bytes are the CID). For lookups, not for display.
 */
export function cidKey(cid: CID): string {
  return String.fromCharCode(...cid.bytes);
}

/** The CID whose `cidKey` this is (the inverse of `cidKey`). */
export function cidFromKey(key: string): CID {
  const bytes = new Uint8Array(key.length);
  for (let i = 0; i < key.length; i++) bytes[i] = key.charCodeAt(i);
  return CID.decode(bytes);
}

const BASE32 = Buffer.from('abcdefghijklmnopqrstuvwxyz234567', 'latin1');

/**
 * What `cid.toString()` gives (base32 with its `b` prefix for a CIDv1, base58btc for a CIDv0), as one flat
 * string. multiformats builds it a character at a time and keeps it in a per-CID `Map` behind a `WeakMap`:
 * ~800 bytes of garbage and a weak entry for the collector per CID, on every record's journal and index lines
 * (issue #15, session 26).
 */
export function cidText(cid: CID): string {
  if (cid.version === 0) return cid.toString();
  const bytes = cid.bytes;
  const out = Buffer.allocUnsafe(1 + Math.ceil((bytes.byteLength * 8) / 5));
  out[0] = 0x62; // 'b'
  let at = 1;
  let bits = 0;
  let acc = 0;
  for (const byte of bytes) {
    acc = ((acc << 8) | byte) & 0xfff; // 5 bits are taken before more than 12 are held
    bits += 8;
    while (bits >= 5) {
      bits -= 5;
      out[at++] = BASE32[(acc >>> bits) & 31]!;
    }
  }
  if (bits > 0) out[at++] = BASE32[(acc << (5 - bits)) & 31]!;
  return out.toString('latin1', 0, at);
}
