import { Hono } from 'hono';
import type { MiddlewareHandler } from 'hono';
import { timingSafeEqual } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import type { Writable } from 'node:stream';
import { asOracleError, BadRequestError, UnauthorizedError } from '../errors.ts';
import { PAGE_CSP } from '../report/html.ts';

/** What the admin API reads from a running oracle: a narrow interface, not the oracle itself. */
export interface AdminDeps {
  stats(): object;
  recordsForUrl(url: string): Promise<object[]>;
  /** The netlock so far: its readable file as a stream, or an object (its root alone). */
  netlock(): Promise<Readable | object>;
  /**
   * The netlock of the run so far as a CARv1 (netlock, records, bodies, attestation documents): its root,
   * known before the first byte, and a writer that streams the blocks (and fails the stream on an error).
   */
  netlockCar?(): Promise<{ root: string; write(out: Writable, signal: AbortSignal): Promise<void> }>;
  caPem(): string;
  /** The live report page's data (`GET /report.json`) and the page around it (`GET /`): streams of text, or whole. */
  report?(poll?: { have?: string; after?: number }): Promise<Readable | object>;
  reportPage?(): Promise<Readable | string>;
  /** Prometheus text exposition (`GET /metrics`). */
  metrics?(): Promise<{ contentType: string; text: string }>;
  /** When set, every route but /healthz needs `Authorization: Bearer <token>`. */
  token?: string;
}

/** A response whose body is `body`, streamed as the client takes it. */
function streamed(body: Readable, headers: Record<string, string>): Response {
  return new Response(Readable.toWeb(body) as ReadableStream, { headers });
}

function sameToken(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.byteLength === b.byteLength && timingSafeEqual(a, b);
}

/** The admin API's access rule: with a token, every request needs `Authorization: Bearer <token>`. */
export function bearerGuard(token: string | undefined): MiddlewareHandler {
  return async (c, next) => {
    if (token === undefined) return next();
    const m = /^Bearer (.+)$/.exec(c.req.header('authorization') ?? '');
    if (m === null || !sameToken(m[1]!, token)) return c.json(new UnauthorizedError('Missing or wrong bearer token').toJSON(), 401);
    return next();
  };
}

/**
 * The admin API: `/healthz`, `/` (the live report page), `/report.json`, `/metrics`, `/stats`, `/records?url=…`, `/netlock`, `/netlock.car`, `/ca.pem`. Errors are
 * JSON `{code, message}`; an error while a CAR streams cuts the response short (a CAR import then refuses it).
 */
export function createAdminApp(deps: AdminDeps): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ ok: true }));
  app.use('*', bearerGuard(deps.token));
  app.get('/stats', (c) => c.json(deps.stats()));
  app.get('/', async (c) => {
    if (deps.reportPage === undefined) return c.json(new BadRequestError('This oracle has no report page', 404).toJSON(), 404);
    const page = await deps.reportPage();
    const headers = { 'content-security-policy': PAGE_CSP, 'x-content-type-options': 'nosniff', 'cache-control': 'no-store' };
    if (typeof page === 'string') return c.html(page, 200, headers);
    return streamed(page, { ...headers, 'content-type': 'text/html; charset=UTF-8' });
  });
  app.get('/report.json', async (c) => {
    if (deps.report === undefined) return c.json(new BadRequestError('This oracle has no report', 404).toJSON(), 404);
    // A polling page says what it has: the entries' version, the last request it holds.
    const have = c.req.query('have');
    const after = Number(c.req.query('after') ?? Number.NaN);
    const report = await deps.report({ ...(have === undefined ? {} : { have }), ...(Number.isSafeInteger(after) ? { after } : {}) });
    if (!(report instanceof Readable)) return c.json(report, 200, { 'cache-control': 'no-store' });
    return streamed(report, { 'content-type': 'application/json', 'cache-control': 'no-store' });
  });
  app.get('/metrics', async (c) => {
    if (deps.metrics === undefined) return c.json(new BadRequestError('This oracle has no metrics', 404).toJSON(), 404);
    const m = await deps.metrics();
    return c.body(m.text, 200, { 'content-type': m.contentType });
  });
  app.get('/records', async (c) => {
    const url = c.req.query('url');
    if (url === undefined || url === '') return c.json(new BadRequestError('Query parameter url is required').toJSON(), 400);
    return c.json({ url, records: await deps.recordsForUrl(url) });
  });
  app.get('/netlock', async (c) => {
    const netlock = await deps.netlock();
    if (!(netlock instanceof Readable)) return c.json(netlock);
    return streamed(netlock, { 'content-type': 'application/json' });
  });
  app.get('/netlock.car', async (c) => {
    if (deps.netlockCar === undefined) return c.json(new BadRequestError('This oracle has no netlock to export', 404).toJSON(), 404);
    const car = await deps.netlockCar();
    const out = new PassThrough();
    const abort = new AbortController();
    out.on('close', () => abort.abort());
    car.write(out, abort.signal).then(
      () => out.end(),
      (err: unknown) => out.destroy(err as Error),
    );
    return streamed(out, { 'content-type': 'application/vnd.ipld.car; version=1', 'x-fetch-oracle-netlock': car.root });
  });
  app.get('/ca.pem', (c) => c.body(deps.caPem(), 200, { 'content-type': 'application/x-pem-file' }));
  app.onError((err, c) => {
    const e = asOracleError(err);
    return c.json(e.toJSON(), e instanceof BadRequestError ? 400 : 500);
  });
  return app;
}
