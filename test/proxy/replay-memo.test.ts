import { describe, expect, it } from 'vitest';
import type { FetchRecord } from '../../src/protocol/record.ts';
import { planResponse } from '../../src/protocol/replay.ts';
import { assertTrustedKey } from '../../src/protocol/signature.ts';
import { plainHead } from '../../src/proxy/exchange.ts';
import { ReplayMemo } from '../../src/proxy/replay-memo.ts';
import { textRecord } from '../helpers/records.ts';
import type { FieldSource } from '../../src/proxy/replay-memo.ts';

const BODY = 'hello, replay';
const HEAD_END = Buffer.from('connection: keep-alive\r\n\r\n', 'latin1');

function record(url = 'http://h.example/a'): Promise<FetchRecord> {
  return textRecord(BODY, url, [['content-type', 'text/plain'], ['content-length', String(BODY.length)]]);
}

const fields = (headers: Record<string, string>): FieldSource => ({ field: (name) => headers[name] });

describe('ReplayMemo.plan', () => {
  it('plans a plain request once per record, method and accept-encoding', async () => {
    const memo = new ReplayMemo();
    const r = await record();
    const get = memo.plan(r, 'GET', fields({}));
    expect(memo.plan(r, 'GET', fields({}))).toBe(get);
    expect(get).toEqual(planResponse(r, { method: 'GET', headers: {} }));
    const head = memo.plan(r, 'HEAD', fields({}));
    expect(head).not.toBe(get);
    expect(head.body).toBeNull();
    const gzip = memo.plan(r, 'GET', fields({ 'accept-encoding': 'gzip' }));
    expect(gzip).not.toBe(get);
    expect(memo.plan(r, 'GET', fields({ 'accept-encoding': 'gzip' }))).toBe(gzip);
    // Another record of the same shape has plans of its own.
    expect(memo.plan(await record('http://h.example/b'), 'GET', fields({}))).not.toBe(get);
  });

  it('keeps the plans on the record itself, so that they go with it (no table outside it)', async () => {
    // The plans of a record replayed once must die with the record, in a young collection. In a WeakMap by
    // record, each first hit left an entry that only a full collection clears: a full collection every ~300 ms
    // of first hits, and first hits 17-42% slower (issue #15, session 31). A memo that moves its plans back
    // into a table of its own fails here.
    const r = await record();
    expect(Object.getOwnPropertySymbols(r)).toHaveLength(0);
    const plan = new ReplayMemo().plan(r, 'GET', fields({}));
    const own = Object.getOwnPropertySymbols(r);
    expect(own).toHaveLength(1);
    expect([...((r as unknown as Record<symbol, Map<string, unknown>>)[own[0]!]!.values())]).toEqual([plan]);
    // Not enumerable to anything that reads the record's fields (JSON, the report, DAG-CBOR's own keys).
    expect(Object.keys(r)).toEqual(['v', 'request', 'response', 'fetchedAt', 'oracle']);
  });

  it('plans a frozen record afresh each time, without failing', async () => {
    const r = Object.freeze(await record());
    const memo = new ReplayMemo();
    const first = memo.plan(r, 'GET', fields({}));
    const second = memo.plan(r, 'GET', fields({}));
    expect(second).not.toBe(first);
    expect(second).toEqual(first);
  });
});

describe('plainHead', () => {
  it('makes a plan\'s head once, kept on the plan; a frozen plan gets the same bytes afresh', async () => {
    const r = await record();
    const plan = planResponse(r, { method: 'GET', headers: {} });
    const head = plainHead(plan, 'GET', HEAD_END);
    expect(head).not.toBeNull();
    expect(plainHead(plan, 'GET', HEAD_END)).toBe(head);
    expect(head!.bytes.toString('latin1')).toBe(
      'HTTP/1.1 200 OK\r\ndate: Sat, 03 Feb 2024 04:05:06 GMT\r\ncontent-type: text/plain\r\ncontent-length: 13\r\nconnection: keep-alive\r\n\r\n',
    );
    expect(head!.contentType).toBe('text/plain');
    expect(Object.getOwnPropertySymbols(plan)).toHaveLength(1);

    const frozen = Object.freeze(planResponse(r, { method: 'GET', headers: {} }));
    const again = plainHead(frozen, 'GET', HEAD_END);
    expect(again).not.toBe(plainHead(frozen, 'GET', HEAD_END));
    expect(again!.bytes.equals(head!.bytes)).toBe(true);
  });
});

describe('assertTrustedKey', () => {
  it('names what it checks only when the key is not trusted', () => {
    const key = new Uint8Array(32).fill(7);
    let named = 0;
    const what = (): string => {
      named++;
      return 'Record bafyexample';
    };
    assertTrustedKey(key, [new Uint8Array(32), key], what);
    expect(named).toBe(0);
    expect(() => assertTrustedKey(key, [new Uint8Array(32)], what)).toThrow(/^Record bafyexample is signed by oracle key 0707/);
    expect(named).toBe(1);
  });
});
