/** The verifier's public value types: the decoded document, its JSON view and the verification options. */

export interface VerifyAttestationOptions {
  /** Time at which every certificate must be valid. Default: the document's own signed `timestamp`. */
  at?: Date;
  /**
   * Freshness: the document's `timestamp` must be no older than this many milliseconds at `at`, and not
   * after `at`. Needs `at` (measured against the document's own time every document would be fresh).
   */
  maxAgeMs?: number;
  /**
   * PCR index → expected 48-byte value. Every listed PCR must be present and equal. Absent: no PCR pinning
   * (the caller must then check `pcrs` itself). An empty object is rejected (fails closed).
   */
  expectedPcrs?: Record<number, Uint8Array>;
  /** Accept debug-mode documents (PCR0/1/2 all zero). Tests only. */
  allowDebug?: boolean;
  /** Hex SHA-256 of the trusted root's DER. Default: the AWS Nitro root G1 fingerprint. */
  rootCertDerSha256?: string;
  /** Trusted root certificate (one PEM block). Default: the bundled AWS Nitro root G1. */
  rootCertPem?: string;
}

export interface AttestationDocument {
  moduleId: string;
  timestamp: Date;
  digest: string;
  pcrs: Map<number, Uint8Array>;
  certificate: Uint8Array;
  cabundle: Uint8Array[];
  publicKey?: Uint8Array;
  userData?: Uint8Array;
  nonce?: Uint8Array;
}

export interface AttestationJson {
  module_id: string;
  /** RFC 3339, UTC, millisecond precision. */
  timestamp: string;
  digest: string;
  pcrs: Record<string, string>;
  public_key: string | null;
  user_data: string | null;
  nonce: string | null;
}
