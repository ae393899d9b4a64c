import type { CID } from 'multiformats/cid';
import type { SignedRecord } from '../protocol/signature.ts';

/**
 * Signs record CIDs with the oracle's ed25519 key. `LocalSigner` holds the key in-process; the enclave's
 * `AttestedSigner` holds one born in the enclave, whose records carry its attestation.
 */
export interface Signer {
  readonly publicKey: Uint8Array;
  /** CID of the attestation document that binds `publicKey` (enclave mode); every record signed carries it. */
  readonly attestation?: CID;
  sign(record: CID): Promise<SignedRecord>;
}
