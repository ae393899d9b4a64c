import type { CID } from 'multiformats/cid';
import { RAW_CODE, verifyBlockSync } from '../protocol/blocks.ts';
import type { FetchRecord } from '../protocol/record.ts';
import type { BodyPart } from '../protocol/replay.ts';
import { computeRequestKey } from '../protocol/request-key.ts';
import type { RequestKey } from '../protocol/request-key.ts';
import { MAX_URL_BYTES, plainHead } from './exchange.ts';
import type { PlainHead } from './exchange.ts';
import type { AtOnceAnswer } from './hit-front.ts';
import { BodyBuffers } from './leaf-buffers.ts';
import type { BlockReader } from './leaf-buffers.ts';
import type { ReplayDecider } from './replay-handler.ts';
import { hasPlanSpecificHeader } from './replay-memo.ts';
import type { ReplayMemo } from './replay-memo.ts';
import type { PlainRequest } from './request-head.ts';

export interface PlainReplayInit {
  memo: ReplayMemo;
  /** One that `PlainReplay.canAnswer`. */
  replayer: ReplayDecider;
  reader: BlockReader;
  stats: { requests: number; answeredAtOnce: number; bytesServed: number };
}

/**
 * Replay's answers to plain GET and HEAD requests for the proxy's front (`hit-front.ts`): a hit whose body is
 * one block, answered with the head Node's server would write and the block, read and verified, in one
 * piece of memory. At once when the key and its verified record are at hand and the block is read without
 * waiting; otherwise once they are looked up. Whatever else (a miss, a body of many blocks or to decode, a
 * block that fails its hash, a URL that is no valid key) is left to Node's server: the replay handler
 * answers it there, with the explanation or error it has, exactly as before.
 */
export class PlainReplay {
  readonly #init: PlainReplayInit;
  /**
   * The memory `readKept` reads a block into, after `#headRoom` bytes kept for the head; `#whole` is all of it.
   * One function for every answer, not a closure per answer (issue #15): `readKept` calls it synchronously, so
   * the two fields are set just before and read just after. A read that waits gets a closure of its own.
   */
  #headRoom = 0;
  #whole: Uint8Array | undefined;
  readonly #allocAfterHead = (size: number): Uint8Array => (this.#whole = BodyBuffers.take(this.#headRoom + size)).subarray(this.#headRoom);

  constructor(init: PlainReplayInit) {
    this.#init = init;
  }

  /** Whether the decider keeps verified records and is told nothing about requests but their keys (host replay). */
  static canAnswer(replayer: ReplayDecider): boolean {
    return replayer.answerNow !== undefined && replayer.recordNow !== undefined && replayer.prepare !== undefined && replayer.needsRequest !== true;
  }

  answer(request: PlainRequest, headEnd: Buffer): AtOnceAnswer | Promise<AtOnceAnswer | undefined> | undefined {
    const { memo, replayer } = this.#init;
    if (hasPlanSpecificHeader(request)) return undefined;
    const cacheKey = memo.rules === undefined ? undefined : memo.cacheKey(request.method, request.url, request)!;
    const key = cacheKey === undefined ? undefined : memo.key(cacheKey);
    const record = key === undefined ? undefined : replayer.recordNow!(key);
    if (record === undefined) return this.#lookUp(request, headEnd, cacheKey);
    return this.#answerFrom(key!, record, request, headEnd);
  }

  /** The answer once the netlock's rules, the request's key and its verified record are at hand. */
  async #lookUp(request: PlainRequest, headEnd: Buffer, known: string | undefined): Promise<AtOnceAnswer | undefined> {
    const { memo, replayer } = this.#init;
    memo.rules ??= { value: await replayer.variantRules() };
    const cacheKey = known ?? memo.cacheKey(request.method, request.url, request)!;
    let key = memo.key(cacheKey);
    if (key === undefined) {
      if (request.url.length > MAX_URL_BYTES) return undefined; // answered 414 there
      const headers: Record<string, string> = {};
      for (let i = 0; i < request.fields.length; i += 2) headers[request.fields[i]!] = request.fields[i + 1]!;
      key = computeRequestKey({ method: request.method, url: request.url, headers }, memo.rules.value);
      memo.keepKey(cacheKey, key);
    }
    await replayer.prepare!(key);
    const record = replayer.recordNow!(key);
    return record === undefined ? undefined : this.#answerFrom(key, record, request, headEnd);
  }

  /** The answer from a verified record: at once when its body block is read without waiting. */
  #answerFrom(key: RequestKey, record: FetchRecord, request: PlainRequest, headEnd: Buffer): AtOnceAnswer | Promise<AtOnceAnswer | undefined> | undefined {
    const plan = this.#init.memo.plan(record, request.method, request);
    const head = plainHead(plan, request.method, headEnd);
    if (head === null) return undefined;
    if (plan.body === null) return this.#answered(key, head, plan.status, head.bytes, 0);
    const { cid, parts } = plan.body;
    if (cid.code !== RAW_CODE) return undefined; // many blocks: streamed by Node's server path
    // The block is read into memory just after a copy of the head: the answer is one write.
    this.#headRoom = head.bytes.byteLength;
    this.#whole = undefined;
    const block = this.#init.reader.readKept(cid, this.#allocAfterHead);
    if (block !== undefined) return this.#withBody(key, head, plan.status, cid, parts, block, this.#whole!);
    let whole: Uint8Array | undefined;
    const headLength = head.bytes.byteLength;
    const alloc = (size: number): Uint8Array => (whole = BodyBuffers.take(headLength + size)).subarray(headLength);
    return this.#init.reader.readBlock(cid, alloc).then((read) => this.#withBody(key, head, plan.status, cid, parts, read, whole!));
  }

  #withBody(key: RequestKey, head: PlainHead, status: number, cid: CID, parts: readonly BodyPart[], block: Uint8Array, whole: Uint8Array): AtOnceAnswer | undefined {
    try {
      verifyBlockSync(cid, block);
    } catch {
      return undefined; // read again there, refused 502, and the store told
    }
    // A plain plan sends the whole block (or nothing, for an empty body); anything else is a DAG to check there.
    const part = parts[0];
    if (parts.length > 1 || (part !== undefined && ('text' in part || part.offset !== 0 || part.length !== block.byteLength))) return undefined;
    head.bytes.copy(whole);
    return this.#answered(key, head, status, whole, part === undefined ? 0 : block.byteLength);
  }

  #answered(key: RequestKey, head: PlainHead, status: number, bytes: Uint8Array, bodyBytes: number): AtOnceAnswer {
    const { replayer, stats } = this.#init;
    replayer.answerNow!(key); // counts the hit, and the entry as used
    stats.requests++;
    stats.answeredAtOnce++;
    stats.bytesServed += bodyBytes;
    return { bytes, lent: bytes !== head.bytes, status, bodyBytes, contentType: head.contentType };
  }
}
