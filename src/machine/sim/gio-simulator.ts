import { rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { InvalidConfigError, throwIfAborted } from '../../errors.ts';
import type { Logger } from '../../log.ts';
import { NOOP_LOGGER } from '../../log.ts';
import type { AbortOptions, BlockSource } from '../../protocol/blocks.ts';
import { answerGio, CMIO_BUFFER_BYTES, GIO_RESPONSE_ERROR, gioErrorResponse } from '../gio-responder.ts';
import type { GioHandler, GioResponse } from '../gio-responder.ts';
import {
  fromhostResponseWord,
  HTIF_DEV_YIELD,
  HTIF_YIELD_CMD_AUTOMATIC,
  isGioRequest,
  packHtifWord,
  unpackHtifWord,
} from '../htif.ts';

/**
 * SIMULATION of the Cartesi Machine's side of a cmio yield, for host tests of the guest's cmio helper
 * (`guest/dist/cmio-helper-host-sim`, built with -DCMIO_SIM). No emulator runs here: this server stands in
 * for the emulator + OpenSBI + `/dev/cmio` driver, one yield at a time, over a unix socket. Frames (all
 * integers big-endian):
 *
 *   helper → simulator   u64 tohost word ‖ tx bytes  (count = word & 0xFFFFFFFF, at most 2 MiB)
 *   simulator → helper   u64 fromhost word ‖ rx bytes (count = word & 0xFFFFFFFF)
 *
 * The word is exactly what the helper passes to / gets back from the YIELD ioctl (cartesi-gio.md §2.1), so
 * the helper's packing and unpacking are exercised. Like OpenSBI the simulator forces dev = 2; a manual GIO
 * yield is answered by its domain's handler (`handlers`), else through `answerGio` (fromhost = code<<32 |
 * length, §1.5); an automatic yield gets the plain acknowledgement (§1.4); rollup yields (reasons 1, 2, 4)
 * are not simulated and end the connection.
 *
 * Unlike `MachineDriver`, which aborts the run when this host lacks a block (design §7), the simulator
 * answers every `answerGio` error in band (code 0xFFFF + `ORACLE_ERR_…: message`), so tests can see the
 * helper report it and keep running.
 */
export interface GioSimulatorInit extends AbortOptions {
  /** Unix socket path to listen on (the helper's CMIO_SIM_SOCKET). Must not exist yet. */
  socketPath: string;
  /** Answers domain 0x25 (and any domain without a handler, which `answerGio` refuses). */
  source: BlockSource;
  /** Other domains (0x26 record, 0x27 control): their handler answers; a rejection is answered in band too. */
  handlers?: ReadonlyMap<number, GioHandler>;
  logger?: Logger;
}

export interface GioSimulatorStats {
  /** GIO requests answered (with a block or an in-band error). */
  requests: number;
  /** Block bytes sent in successful replies. */
  bytes: number;
  /** Requests answered with the in-band error code. */
  errors: number;
}

export interface GioSimulator {
  readonly socketPath: string;
  readonly stats: GioSimulatorStats;
  /** Stops listening, ends every connection and removes the socket file. Idempotent. */
  close(): Promise<void>;
}

const WORD_BYTES = 8;

export async function startGioSimulator(init: GioSimulatorInit): Promise<GioSimulator> {
  throwIfAborted(init.signal);
  const logger = (init.logger ?? NOOP_LOGGER).child('gio-simulator');
  const stats: GioSimulatorStats = { requests: 0, bytes: 0, errors: 0 };
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
    serveConnection(socket, init.source, init.handlers ?? new Map(), stats, logger);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err) => reject(new InvalidConfigError(`GIO simulator cannot listen on ${init.socketPath}: ${err.message}`, { cause: err })));
    server.listen(init.socketPath, () => resolve());
  });
  logger.debug('SIMULATED cmio yield device listening on %s', init.socketPath);

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= (async () => {
      const closed = new Promise<void>((resolve) => server.close(() => resolve()));
      for (const s of sockets) s.destroy();
      await closed;
      await rm(init.socketPath, { force: true });
    })();
    return closing;
  };
  init.signal?.addEventListener('abort', () => void close(), { once: true });
  return { socketPath: init.socketPath, stats, close };
}

/** One connection = one simulated machine with one helper: yields are served strictly in order. */
function serveConnection(socket: Socket, source: BlockSource, handlers: ReadonlyMap<number, GioHandler>, stats: GioSimulatorStats, logger: Logger): void {
  let buffered: Buffer[] = [];
  let length = 0;
  let busy = false;
  const abort = new AbortController();
  socket.once('close', () => abort.abort());
  socket.on('error', (err) => logger.debug('helper connection error: %s', err.message));

  const take = (n: number): Buffer => {
    const all = buffered.length === 1 ? buffered[0]! : Buffer.concat(buffered, length);
    buffered = n < all.byteLength ? [all.subarray(n)] : [];
    length -= n;
    return all.subarray(0, n);
  };
  const peekWord = (): bigint => {
    const head = buffered.length === 1 ? buffered[0]! : Buffer.concat(buffered, length);
    buffered = [head];
    return head.readBigUInt64BE(0);
  };

  const pump = async (): Promise<void> => {
    if (busy) return;
    busy = true;
    try {
      while (length >= WORD_BYTES) {
        // OpenSBI's sbi_system_yield forces dev = 2 (cartesi-gio.md §2.1).
        const tohost = (BigInt(HTIF_DEV_YIELD) << 56n) | (peekWord() & 0x00ff_ffff_ffff_ffffn);
        const { cmd, reason, data } = unpackHtifWord(tohost);
        if (cmd === HTIF_YIELD_CMD_AUTOMATIC) {
          take(WORD_BYTES);
          await send(socket, packHtifWord({ dev: HTIF_DEV_YIELD, cmd: HTIF_YIELD_CMD_AUTOMATIC, reason: 0, data: 0 }), new Uint8Array(0));
          continue;
        }
        if (!isGioRequest(cmd, reason)) {
          logger.warn('SIMULATED machine: yield cmd %d reason %d is not a GIO request; rollup yields are not simulated, closing', cmd, reason);
          socket.destroy();
          return;
        }
        if (data > CMIO_BUFFER_BYTES) {
          logger.warn('SIMULATED machine: GIO id length %d exceeds the tx buffer, closing', data);
          socket.destroy();
          return;
        }
        if (length < WORD_BYTES + data) return; // wait for the rest of the tx bytes
        take(WORD_BYTES);
        const id = new Uint8Array(take(data));
        let response: GioResponse;
        try {
          const handler = handlers.get(reason);
          response = handler === undefined ? await answerGio(reason, id, source, { signal: abort.signal }) : await handler(id, abort.signal);
          if (response.code === GIO_RESPONSE_ERROR) stats.errors++;
          else stats.bytes += response.data.byteLength;
        } catch (err) {
          if (abort.signal.aborted) return;
          response = gioErrorResponse(err);
          stats.errors++;
          logger.debug('SIMULATED machine: answering GIO 0x%s in band: %s', reason.toString(16), (err as Error).message);
        }
        stats.requests++;
        await send(socket, fromhostResponseWord(response.code, response.data.byteLength), response.data);
      }
    } catch (err) {
      logger.warn('SIMULATED machine: connection failed: %s', (err as Error).message);
      socket.destroy();
    } finally {
      busy = false;
    }
    if (length >= WORD_BYTES && !socket.destroyed) void pump();
  };

  socket.on('data', (chunk: Buffer) => {
    buffered.push(chunk);
    length += chunk.byteLength;
    void pump();
  });
}

function send(socket: Socket, word: bigint, data: Uint8Array): Promise<void> {
  const head = Buffer.alloc(WORD_BYTES);
  head.writeBigUInt64BE(word);
  return new Promise<void>((resolve, reject) => {
    const done = (err?: Error | null): void => (err ? reject(err) : resolve());
    if (data.byteLength === 0) {
      socket.write(head, done);
      return;
    }
    socket.write(head);
    socket.write(data, done);
  });
}
