import type { Socket } from 'node:net';
import { BodyBuffers } from './leaf-buffers.ts';
import { OTHER, PARTIAL, parsePlainRequest } from './request-head.ts';
import type { PlainRequest } from './request-head.ts';

/** An answer given at once: head and body (already read and verified) in one piece of memory. */
export interface AtOnceAnswer {
  readonly bytes: Uint8Array;
  /** Whether `bytes` is memory `BodyBuffers` lent: given back once the socket has taken it. */
  readonly lent: boolean;
  /** For the request log: status, body length and content type sent. */
  readonly status: number;
  readonly bodyBytes: number;
  readonly contentType: string;
}

/**
 * Answers a plain request from what is at hand (no waiting on I/O), or undefined: then Node's server gets it.
 * `headEnd` is what ends every head on this connection: the fields Node's server adds there, and the empty line.
 */
export type AnswerAtOnce = (request: PlainRequest, headEnd: Buffer) => AtOnceAnswer | undefined;

export interface HitFrontInit {
  answer: AnswerAtOnce;
  /**
   * Gives a connection to Node's HTTP server for good, with the bytes already read from it that it must
   * parse first (undefined: none).
   */
  handOff(socket: Socket, unread: Buffer | undefined): void;
  /** Node's `keepAliveTimeout`: an idle kept-alive connection is closed after it, and says so in each answer. */
  keepAliveTimeoutMs: number;
  /** The limits of Node's parser (a head beyond them is handed off, to be answered 431 there). */
  maxHeadBytes: number;
  maxFields: number;
  /** Whether a URL may name the oracle itself (the gate must then look at it: handed off). */
  mayTargetSelf(url: string): boolean;
  /** Told of the first request answered on a connection. */
  answered(socket: Socket): void;
}

/** Answers queued on a socket beyond which the rest of its requests go to Node's server (it has backpressure). */
const MAX_QUEUED_BYTES = 1024 * 1024;

/**
 * The proxy's front for a mode that can answer requests at once (replay): reads a new connection itself and
 * answers its plain requests (`request-head.ts`) straight onto the socket, one `write` each. At the first request it does not answer (not plain, not at hand, a partial head,
 * the proxy closing) it hands the connection, with the unread bytes, to Node's HTTP server, which then
 * serves it as it serves every other connection. Node's server costs ~20 µs of CPU a request on this
 * machine's cores, as much as the rest of a 4 KiB replay hit; this front, ~3 µs (issue #15).
 *
 * The answers are those Node's server would give: the same head (with `Connection: keep-alive` and
 * `Keep-Alive: timeout=N` appended as Node does), closing an idle connection after the same keep-alive
 * timeout, ending it after the client's half-close once everything is answered.
 */
export class HitFront {
  readonly #init: HitFrontInit;
  readonly #headEnd: Buffer;
  /** Connections read here, each with how to hand it off. */
  readonly #sockets = new Map<Socket, (unread: Buffer | undefined) => void>();
  #closing = false;

  constructor(init: HitFrontInit) {
    this.#init = init;
    this.#headEnd = Buffer.from(`Connection: keep-alive\r\nKeep-Alive: timeout=${Math.floor(init.keepAliveTimeoutMs / 1000)}\r\n\r\n`, 'latin1');
  }

  /**
   * Starts reading a new client connection: one to the proxy (absolute-form requests), or with `origin` the
   * socket inside a tunnel to that origin (origin-form requests; its CONNECT was let in by the gate).
   */
  adopt(socket: Socket, origin?: string): void {
    const init = this.#init;
    let answeredOne = false;
    const onData = (chunk: Buffer): void => {
      let at = 0;
      while (at < chunk.byteLength && !this.#closing && socket.writableLength < MAX_QUEUED_BYTES) {
        const request = parsePlainRequest(chunk, at, init.maxHeadBytes, init.maxFields, origin);
        if (request === PARTIAL || request === OTHER || (origin === undefined && init.mayTargetSelf(request.url))) break;
        const answer = init.answer(request, this.#headEnd);
        if (answer === undefined) break;
        // One write, without a callback: when nothing stays queued, the kernel has copied the bytes and the
        // memory can serve the next answer; otherwise it is left to the collector (a client not reading).
        socket.write(answer.bytes);
        if (answer.lent && socket.writableLength === 0) BodyBuffers.give(answer.bytes);
        at = request.end;
        if (!answeredOne) {
          answeredOne = true;
          init.answered(socket);
          socket.setTimeout(init.keepAliveTimeoutMs);
        }
      }
      if (at < chunk.byteLength) handOff(chunk.subarray(at));
    };
    const onEnd = (): void => void socket.end();
    const onTimeout = (): void => void socket.destroy();
    const ignore = (): void => {}; // a reset client: the 'close' that follows cleans up
    const onClose = (): void => void this.#sockets.delete(socket);
    const handOff = (unread: Buffer | undefined): void => {
      socket.off('data', onData).off('end', onEnd).off('timeout', onTimeout).off('error', ignore).off('close', onClose);
      this.#sockets.delete(socket);
      if (answeredOne) socket.setTimeout(0);
      init.handOff(socket, unread);
    };
    socket.on('data', onData).on('end', onEnd).on('timeout', onTimeout).on('error', ignore).on('close', onClose);
    this.#sockets.set(socket, handOff);
  }

  /**
   * Hands every connection to Node's server, and from now on every new one: closing the server then closes
   * the idle ones and lets answers under way finish, as for any other. Idempotent.
   */
  close(): void {
    this.#closing = true;
    for (const handOff of [...this.#sockets.values()]) handOff(undefined);
  }

  /** Whether new connections still come here (else they go straight to Node's server). */
  get open(): boolean {
    return !this.#closing;
  }
}
