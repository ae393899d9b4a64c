import { serve } from '@hono/node-server';
import type { ServerType } from '@hono/node-server';
import type { Hono } from 'hono';
import type { AddressInfo } from 'node:net';
import { validateAdminExposure } from '../config/exposure.ts';
import type { ListenAddress } from '../io/listen.ts';
import type { AdminDeps } from './app.ts';
import { createAdminApp } from './app.ts';

/** Serves the admin API on its own port; refuses a non-loopback address without a bearer token. */
export class AdminServer {
  readonly #server: ServerType;
  #closed: Promise<void> | undefined;

  private constructor(server: ServerType) {
    this.#server = server;
  }

  static async start(address: ListenAddress, deps: AdminDeps): Promise<AdminServer> {
    return AdminServer.serve(address, createAdminApp(deps), deps.token);
  }

  /** Serves `app` (which must guard its routes with `token`, as createAdminApp does) under the same exposure rule. */
  static async serve(address: ListenAddress, app: Hono, token: string | undefined): Promise<AdminServer> {
    validateAdminExposure(address, token);
    return new Promise((resolve, reject) => {
      const server = serve({ fetch: app.fetch, hostname: address.host, port: address.port }, () => resolve(new AdminServer(server)));
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
