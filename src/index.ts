/**
 * The public API of fetch-oracle (`import { … } from 'fetch-oracle'`): the oracle, its block stores,
 * netlock verification, file and CAR formats, signing, the proxy's CA, request keys, errors and logging.
 * Named lists only, so that every export is chosen; everything else under src/ is internal.
 */

// The oracle
export { Oracle } from './oracle/oracle.ts';
export type { OracleInit, RecordInit, ReplayInit, ReplayReport } from './oracle/oracle.ts';
export { openReplay } from './oracle/open-replay.ts';
export type { OpenedReplay, OpenReplayInit } from './oracle/open-replay.ts';

// Block stores
export { createBlockStore } from './store/create-block-store.ts';
export type { CreateBlockStoreInit } from './store/create-block-store.ts';
export { FsBlockStore } from './store/fs-block-store.ts';
export { KuboBlockStore } from './store/kubo-block-store.ts';
export type { KuboBlockStoreInit } from './store/kubo-block-store.ts';
export { MemoryBlockStore } from './store/memory-block-store.ts';
export { TieredBlockStore } from './store/tiered-block-store.ts';
export type { TieredBlockStoreInit } from './store/tiered-block-store.ts';
export type { Block, BlockStore, PinOptions } from './store/block-store.ts';
export type { AbortOptions, BlockSink, BlockSource } from './protocol/blocks.ts';

// Netlocks: verification, the netlock file, CAR export and import
export { verifyNetlock } from './netlock/verify.ts';
export type { VerifyFailure, VerifyNetlockOptions, VerifyReport } from './netlock/verify.ts';
export { readNetlockRoot, writeNetlockFile } from './netlock/file.ts';
export type { NetlockFile, NetlockFileEntry, WrittenNetlock } from './netlock/file.ts';
export { exportCar, EXPORT_PREFETCH_BLOCKS } from './netlock/export-car.ts';
export type { ExportCarOptions, ExportCarResult } from './netlock/export-car.ts';
export { CarImportError, importCar } from './netlock/import-car.ts';
export type { ImportCarOptions, ImportCarResult } from './netlock/import-car.ts';

// k-of-n witnesses: countersignatures, the quorum decision, witnessing a netlock
export { witnessNetlock } from './oracle/witness.ts';
export type { NotWitnessed, WitnessInit, WitnessResult } from './oracle/witness.ts';
export { decodeCountersignature, encodeCountersignature, signCountersignatureCid, verifyCountersignatureSignature } from './protocol/countersignature.ts';
export type { Countersignature, SignedCountersignature } from './protocol/countersignature.ts';
export { tallyQuorum, witnessVerdict } from './protocol/quorum.ts';
export type { QuorumTally, Vouch, WitnessReason } from './protocol/quorum.ts';
export { loadQuorumRecord } from './protocol/verify-record.ts';

// Records and signing
export { LocalSigner } from './signing/local-signer.ts';
export type { Signer } from './signing/signer.ts';
export type { SignedRecord } from './protocol/signature.ts';
export type { FetchRecord } from './protocol/record.ts';
export { computeRequestKey } from './protocol/request-key.ts';
export type { RequestKey, RequestKeyInput, VariantRules } from './protocol/request-key.ts';

// Provenance (SLSA v1 in an in-toto statement, DSSE-signed; docs/provenance.md)
export { writeProvenance, verifyProvenanceFile } from './provenance/provenance-file.ts';
export type { VerifiedProvenance, VerifyProvenanceOptions, WriteProvenanceInit } from './provenance/provenance-file.ts';
export { buildProvenanceStatement, parseProvenanceStatement } from './protocol/provenance.ts';
export type { ProvenanceStatement, ResourceDescriptor } from './protocol/provenance.ts';
export { pae, verifyEnvelope } from './protocol/dsse.ts';
export type { DsseEnvelope } from './protocol/dsse.ts';

// TLS
export { CertAuthority } from './tls/cert-authority.ts';
export type { CertAuthorityInit } from './tls/cert-authority.ts';

// Errors
export {
  AbortedError,
  asOracleError,
  AttestationError,
  BadCountersignatureError,
  BadRequestError,
  BadSignatureError,
  BlockCorruptError,
  BlockMissingError,
  DeviceError,
  DigestMismatchError,
  ForbiddenTargetError,
  ERROR_CODES,
  errorFromCode,
  InternalError,
  InvalidArchiveError,
  InvalidConfigError,
  InvalidLockfileError,
  InvalidNetlockError,
  InvalidProvenanceError,
  InvalidRecordError,
  MachineError,
  NotAttestedError,
  NsmError,
  OracleError,
  OverloadedError,
  QuorumNotMetError,
  RecordsDisagreeError,
  ReplayMissError,
  StoreError,
  SubjectMismatchError,
  TruncatedBodyError,
  UnauthorizedError,
  UntrustedKeyError,
  UpstreamError,
  UpstreamTimeoutError,
} from './errors.ts';
export type { ErrorCode } from './errors.ts';

// Logging
export { createLogger, NOOP_LOGGER } from './log.ts';
export type { Logger, LogSink } from './log.ts';

// Report page and metrics (docs/report.md)
export { buildFileReport } from './report/file-report.ts';
export { renderReportHtml } from './report/html.ts';
export { OracleMetrics } from './report/metrics.ts';
export type { ReportData } from './report/model.ts';
