import { serve } from '@hono/node-server';
import type { ServerType } from '@hono/node-server';
import { Hono } from 'hono';
import type { AddressInfo } from 'node:net';
import { validateAdminExposure } from '../config/exposure.ts';
import type { ListenAddress } from '../io/listen.ts';
import { bearerGuard } from './app.ts';

/**
 * `GET /metrics` (and `/healthz`) alone, for a command that has metrics but no oracle (`serve-machine`), under the
 * admin API's rules: loopback, or a bearer token off loopback.
 */
export class MetricsServer {
  readonly #server: ServerType;
  #closed: Promise<void> | undefined;

  private constructor(server: ServerType) {
    this.#server = server;
  }

  static async start(address: ListenAddress, scrape: () => Promise<{ contentType: string; text: string }>, token?: string): Promise<MetricsServer> {
    validateAdminExposure(address, token);
    const app = new Hono();
    app.get('/healthz', (c) => c.json({ ok: true }));
    app.use('*', bearerGuard(token));
    app.get('/metrics', async (c) => {
      const m = await scrape();
      return c.body(m.text, 200, { 'content-type': m.contentType });
    });
    return new Promise((resolve, reject) => {
      const server = serve({ fetch: app.fetch, hostname: address.host, port: address.port }, () => resolve(new MetricsServer(server)));
      server.once('error', reject);
    });
  }

  address(): ListenAddress {
    const a = this.#server.address() as AddressInfo;
    return { host: a.address, port: a.port };
  }

  close(): Promise<void> {
    this.#closed ??= new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      if ('closeAllConnections' in this.#server) this.#server.closeAllConnections();
    });
    return this.#closed;
  }
}
