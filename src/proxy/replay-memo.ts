import type { IncomingHttpHeaders } from 'node:http';
import type { FetchRecord } from '../protocol/record.ts';
import { planResponse } from '../protocol/replay.ts';
import type { ResponsePlan } from '../protocol/replay.ts';
import type { RequestKey, VariantRules } from '../protocol/request-key.ts';

/** Request keys kept for repeated GET/HEAD requests (least recently used out first). */
export const KEY_CACHE_ENTRIES = 4096;
/** Plans kept per record: one per method and `accept-encoding` value seen, a handful in practice. */
const PLANS_PER_RECORD = 8;
/** Request headers that make a plan differ from the plain one (ranges and validators): never cached. */
const PLAN_SPECIFIC_HEADERS = ['range', 'if-range', 'if-none-match', 'if-modified-since'] as const;

/**
 * A record's plain plans, kept on the record (a symbol-keyed field) so that they live exactly as long as it
 * does. They were kept in a WeakMap by record: fine for the records replay keeps, but a build asks for most
 * URLs once, and V8 clears a WeakMap's entries only in a full collection, so every first hit left an entry
 * (and its record's plans) for one: a full collection every ~300 ms of first hits, and first hits +17–42%
 * without them (issue #15, session 31).
 */
const PLANS = Symbol('fetch-oracle.plans');
type RecordWithPlans = FetchRecord & { [PLANS]?: Map<string, ResponsePlan> };

/**
 * A request's header fields by lower-case name: a plain request (`PlainRequest`), or an IncomingMessage's
 * headers (`headerFields`). An object, not a callback: a closure over the request made per lookup was garbage
 * on every 4 KiB hit (issue #15).
 */
export interface FieldSource {
  field(name: string): string | string[] | undefined;
}

/** An IncomingMessage's headers as a FieldSource. */
export function headerFields(headers: IncomingHttpHeaders): FieldSource {
  return { field: (name) => headers[name] };
}

/** Whether the request has any header that makes its plan differ from the plain one. */
export function hasPlanSpecificHeader(fields: FieldSource): boolean {
  for (let i = 0; i < PLAN_SPECIFIC_HEADERS.length; i++) if (fields.field(PLAN_SPECIFIC_HEADERS[i]!) !== undefined) return true;
  return false;
}

/**
 * What replay keeps of the requests it answered, shared by Node's server path (`replay-handler.ts`) and the
 * front's (`plain-replay.ts`). A build asks for the same few requests over and over, so what follows from a
 * request's method, URL and variant headers alone is kept: its key (normalising a URL costs more than looking
 * it up), and per record the plan of a plain GET or HEAD (its head, flattened once). Ranges and conditional
 * requests are planned afresh. Nothing kept depends on the bytes on disk: every body block is still read and
 * verified on every answer.
 */
export class ReplayMemo {
  readonly #keys = new Map<string, RequestKey>();
  /** The netlock's variant rules, once read (its root never changes). */
  rules: { value: VariantRules | undefined } | undefined;
  /** Headers that enter a key besides `accept`: every header any variant rule names. */
  #ruleHeaders: readonly string[] | undefined;

  /**
   * What a GET or HEAD without a body is keyed by here: method, URL as sent and the variant headers;
   * undefined for any other method. The rules must have been read.
   */
  cacheKey(method: string | undefined, url: string, fields: FieldSource): string | undefined {
    if (method !== 'GET' && method !== 'HEAD') return undefined;
    let k = `${method}\n${url}\n${headerText(fields.field('accept'))}`;
    const rules = this.rules?.value;
    if (rules !== undefined) {
      this.#ruleHeaders ??= [...new Set(Object.values(rules).flat().map((h) => h.toLowerCase()))].sort();
      for (const h of this.#ruleHeaders) k += `\n${headerText(fields.field(h))}`;
    }
    return k;
  }

  key(cacheKey: string): RequestKey | undefined {
    return this.#keys.get(cacheKey);
  }

  keepKey(cacheKey: string, key: RequestKey): void {
    this.#keys.set(cacheKey, key);
    if (this.#keys.size > KEY_CACHE_ENTRIES) this.#keys.delete(this.#keys.keys().next().value!);
  }

  /**
   * The plan for a request from `record`: kept per record for plain requests, made afresh from `headers` (the
   * same request's, on Node's server path) for ranges and validators; a plain request never has them.
   */
  plan(record: FetchRecord, method: string, fields: FieldSource, headers?: IncomingHttpHeaders): ResponsePlan {
    if (headers !== undefined && hasPlanSpecificHeader(fields)) return planResponse(record, { method, headers });
    const acceptEncoding = fields.field('accept-encoding');
    const k = `${method}\n${headerText(acceptEncoding)}`;
    const withPlans = record as RecordWithPlans;
    let plans = withPlans[PLANS];
    const kept = plans?.get(k);
    if (kept !== undefined) return kept;
    // A plain request: only its accept-encoding enters the plan.
    const plan = planResponse(record, { method, headers: acceptEncoding === undefined ? {} : { 'accept-encoding': acceptEncoding } });
    if (plans === undefined) {
      if (!Object.isExtensible(record)) return plan; // a frozen record: planned afresh each time
      withPlans[PLANS] = plans = new Map<string, ResponsePlan>();
    }
    if (plans.size >= PLANS_PER_RECORD) plans.clear();
    plans.set(k, plan);
    return plan;
  }
}

/** A header's value as one string, absent and repeated ones told apart (header values never hold NUL). */
function headerText(v: string | string[] | undefined): string {
  return v === undefined ? '\u0000' : Array.isArray(v) ? v.join('\u0000') : v;
}
