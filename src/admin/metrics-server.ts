import { Hono } from 'hono';
import type { ListenAddress } from '../io/listen.ts';
import { bearerGuard } from './app.ts';
import { AdminServer } from './server.ts';

/**
 * `GET /metrics` (and `/healthz`) alone, for a command that has metrics but no oracle (`serve-machine`), under the
 * admin API's rules: loopback, or a bearer token off loopback.
 */
export async function startMetricsServer(address: ListenAddress, scrape: () => Promise<{ contentType: string; text: string }>, token?: string): Promise<AdminServer> {
  const app = new Hono();
  app.get('/healthz', (c) => c.json({ ok: true }));
  app.use('*', bearerGuard(token));
  app.get('/metrics', async (c) => {
    const m = await scrape();
    return c.body(m.text, 200, { 'content-type': m.contentType });
  });
  return AdminServer.serve(address, app, token);
}
