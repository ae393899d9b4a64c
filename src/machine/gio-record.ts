import type { Logger } from '../log.ts';
import { NOOP_LOGGER } from '../log.ts';
import type { DirectRequest, DirectRequestOptions } from '../oracle/recorder.ts';
import { loggableUrl } from '../protocol/request-key.ts';
import type { DecodedEntry } from '../netlock/file.ts';
import { decodeRecordRequest, encodeRecordReply } from './gio-record-wire.ts';
import { GIO_RESPONSE_OK, gioErrorResponse } from './gio-responder.ts';
import type { GioHandler, GioResponse } from './gio-responder.ts';

/** What the 0x26 handler asks of the record path (`Recorder.recordDirect`). */
export interface DirectRecorder {
  recordDirect(request: DirectRequest, options?: DirectRequestOptions): Promise<{ entry: DecodedEntry; fetched: boolean }>;
}

export interface RecordGioCounters {
  /** 0x26 requests answered with a record. */
  recorded: number;
  /** Of those, fetched upstream for this request (the rest were already recorded). */
  fetched: number;
  /** Answered with an in-band refusal. */
  refused: number;
}

export interface RecordGioHandler {
  /** Answers one 0x26 id. Resolves with every answer, refusals included; rejects only once `signal` fired. */
  readonly handle: GioHandler;
  readonly counters: RecordGioCounters;
}

/**
 * The host's side of GIO domain 0x26: decodes the guest's request (`decodeRecordRequest`), records it
 * through the record path exactly as the proxy would (key, coalescing, one upstream fetch, store, signature,
 * index, journal; an origin that gives no answer becomes the recorded 502, `answerFailures`), and answers
 * `{"key","record","signature","fetched"}`. The guest then reads the record and body by CID over 0x25.
 *
 * Every outcome is an answer: a malformed id (ORACLE_ERR_DEVICE / ORACLE_ERR_BAD_REQUEST) and a failure that
 * is not recorded (an upstream timeout, a full disk) are refused in band (code 0xFFFF, `CODE: message`), so
 * the guest's client gets a 502 as it would from `fetch-oracle record`; a yield is never left unanswered.
 */
export function createRecordGioHandler(recorder: DirectRecorder, logger: Logger = NOOP_LOGGER): RecordGioHandler {
  const log = logger.child('gio-record');
  const counters: RecordGioCounters = { recorded: 0, fetched: 0, refused: 0 };
  const refuse = (err: unknown): GioResponse => {
    counters.refused++;
    log.warn('refusing GIO 0x26 request in band: %s', (err as Error).message);
    return gioErrorResponse(err);
  };
  const handle = async (id: Uint8Array, signal?: AbortSignal): Promise<GioResponse> => {
    let request: DirectRequest;
    try {
      request = decodeRecordRequest(id);
    } catch (err) {
      return refuse(err);
    }
    try {
      const { entry, fetched } = await recorder.recordDirect(request, { answerFailures: true, ...(signal === undefined ? {} : { signal }) });
      counters.recorded++;
      if (fetched) counters.fetched++;
      log.debug('0x26 %s %s -> %d %s (%s)', request.method, loggableUrl(request.url), entry.record.response.status, entry.signed.record.toString(), fetched ? 'fetched' : 'recorded before');
      return { code: GIO_RESPONSE_OK, data: encodeRecordReply({ key: entry.key, signed: entry.signed, fetched }) };
    } catch (err) {
      if (signal?.aborted === true) throw err; // the run is being torn down: nobody waits for this answer
      return refuse(err);
    }
  };
  return { handle, counters };
}
