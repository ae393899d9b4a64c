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
