import { createConnection } from 'node:net';

/**
 * Sends `text` on a raw connection to 127.0.0.1:port (half-closing it after, with `halfClose`) and returns
 * everything received until the connection closes or `timeoutMs` passes.
 */
export function rawExchange(port: number, text: string, options: { halfClose?: boolean; timeoutMs?: number } = {}): Promise<string> {
  return new Promise((resolve) => {
    const s = createConnection(port, '127.0.0.1');
    let out = '';
    s.on('data', (c: Buffer) => (out += c.toString('latin1')));
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
    s.setTimeout(options.timeoutMs ?? 5000, () => s.destroy());
    if (options.halfClose === true) s.end(text);
    else s.write(text);
  });
}
