import type { Server } from 'node:net';

/** A TCP address to listen on (port 0 picks a free one). */
export interface ListenAddress {
  host: string;
  port: number;
}

/** Starts `server` listening on a TCP address or a unix socket path; rejects with the bind error. */
export function listenOn(server: Server, address: ListenAddress | { path: string }): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if ('path' in address) server.listen(address.path, done);
    else server.listen(address.port, address.host, done);
  });
}
