import type { Socket } from 'node:net';
import { writeNowOrAtTurnEnd } from '../io/turn-writes.ts';
import { BodyBuffers } from './leaf-buffers.ts';
import { OTHER, PARTIAL, parsePlainRequest } from './request-head.ts';
import type { PlainRequest } from './request-head.ts';

/** An answer given by the front: head and body (already read and verified) in one piece of memory. */
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
 * Answers a plain request: at once from what is at hand, or a promise of the answer once something was looked
 * up (it resolves undefined, or rejects, when the request turns out to need Node's server), or undefined:
 * Node's server gets it. `headEnd` is what ends every head: the fields Node's server adds there, and the
 * empty line.
 */
export type AnswerPlain = (request: PlainRequest, headEnd: Buffer) => AtOnceAnswer | Promise<AtOnceAnswer | undefined> | undefined;

export interface HitFrontInit {
  answer: AnswerPlain;
  /**
   * Gives a connection to Node's HTTP server for good, with the bytes already read from it that it must
   * parse first (undefined: none).
   */
  handOff(socket: Socket, unread: Buffer | undefined): void;
  /** Node's `keepAliveTimeout`: an idle kept-alive connection is closed after it, and says so in each answer. */
  keepAliveTimeoutMs: number;
  /** A connection that sends no byte within this after it opens is given to `headerTimedOut` (Node's `headersTimeout`). */
  headerTimeoutMs: number;
  /** Answers a connection whose request head did not come in time (408), as Node's server's timeout is answered. */
  headerTimedOut(socket: Socket): void;
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
/** Answers up to this size on a plain socket are written without a callback: the kernel usually takes them at once. */
const WHOLE_WRITE_MAX = 64 * 1024;

/**
 * The proxy's front for a mode that answers plain requests itself (replay): reads a new connection and
 * answers its plain requests (`request-head.ts`) straight onto the socket, one `write` each, in order (an
 * answer that was looked up, after another one in the same turn of the event loop, at the end of that turn:
 * `turn-writes.ts`). At the first request it leaves (not plain, a partial head, something only Node's server
 * answers: a miss, a range, a body streamed from many blocks; or the proxy closing) it hands the connection,
 * with the bytes not yet answered, to Node's HTTP server, which serves it from then on as it serves every
 * other connection. Node's server costs ~20 µs of CPU a request on this machine's cores, as much as the rest
 * of a 4 KiB replay hit; this front, a few (issue #15).
 *
 * The answers are those Node's server would give: the same head (with `Connection: keep-alive` and
 * `Keep-Alive: timeout=N` appended as Node does), closing an idle connection after the same keep-alive
 * timeout (not while an answer is being looked up), ending it after the client's half-close once every
 * request is answered.
 */
export class HitFront {
  readonly #init: HitFrontInit;
  readonly #headEnd: Buffer;
  /** Connections read here, each with how to hand it off. */
  readonly #connections = new Map<Socket, FrontConnection>();
  /** Answers being looked up. */
  readonly #waits = new Set<Promise<void>>();
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
    this.#connections.set(socket, new FrontConnection(this, socket, origin));
  }

  /** Whether new connections still come here (else they go straight to Node's server). */
  get open(): boolean {
    return !this.#closing;
  }

  /**
   * Hands every connection to Node's server (one waiting for an answer once it has it), and from now on
   * every new one: closing the server then closes the idle ones and lets answers under way finish, as for
   * any other. Resolves once no answer is being looked up. Idempotent.
   */
  async close(): Promise<void> {
    this.#closing = true;
    for (const c of [...this.#connections.values()]) c.closing();
    await Promise.allSettled([...this.#waits]);
  }

  get init(): HitFrontInit {
    return this.#init;
  }

  get headEnd(): Buffer {
    return this.#headEnd;
  }

  get closing(): boolean {
    return this.#closing;
  }

  waiting(wait: Promise<void>): void {
    this.#waits.add(wait);
    void wait.finally(() => this.#waits.delete(wait));
  }

  forget(socket: Socket): void {
    this.#connections.delete(socket);
  }
}

/** One connection while the front reads it: its requests are answered one after another, in order. */
class FrontConnection {
  readonly #front: HitFront;
  readonly #socket: Socket;
  readonly #origin: string | undefined;
  /** While an answer is looked up: the bytes read and not answered yet, from its request on. */
  #unread: Buffer | undefined;
  #waiting = false;
  /** The client half-closed while an answer was looked up. */
  #ended = false;
  #answeredOne = false;
  #handedOff = false;
  /** Answers held until the end of this turn of the event loop (`turn-writes.ts`), oldest first, and their size. */
  readonly #held: AtOnceAnswer[] = [];
  #heldBytes = 0;
  readonly #writeHeld = (): void => this.writeHeld();
  /** Lent memory written to a TLS socket and not yet taken by it, oldest first. */
  readonly #inFlight: Uint8Array[] = [];
  readonly #written = (err?: Error | null): void => {
    const bytes = this.#inFlight.shift();
    if (bytes !== undefined && err == null) BodyBuffers.give(bytes);
  };
  readonly #onData = (chunk: Buffer): void => {
    // The socket is paused while waiting; a chunk already on its way is kept for after.
    if (this.#waiting) this.#unread = Buffer.concat([this.#unread!, chunk]);
    else this.#serve(chunk);
  };
  readonly #onEnd = (): void => {
    if (this.#waiting) this.#ended = true;
    else this.#end();
  };
  readonly #onTimeout = (): void => {
    if (this.#answeredOne) this.#socket.destroy(); // kept alive, idle: closed, as Node's server closes it
    else {
      this.#release();
      this.#front.init.headerTimedOut(this.#socket);
    }
  };
  readonly #onClose = (): void => this.#front.forget(this.#socket);

  constructor(front: HitFront, socket: Socket, origin: string | undefined) {
    this.#front = front;
    this.#socket = socket;
    this.#origin = origin;
    // An 'error' listener: a reset client is just closed (the 'close' that follows forgets it).
    socket.on('data', this.#onData).on('end', this.#onEnd).on('timeout', this.#onTimeout).on('error', ignore).on('close', this.#onClose);
    // Until its first request comes (a partial head goes to Node's server, whose own timeout then counts).
    socket.setTimeout(front.init.headerTimeoutMs);
  }

  /** The proxy closes: an idle connection goes to Node's server now, one waiting for an answer after it. */
  closing(): void {
    if (!this.#waiting) this.#handOff(undefined);
  }

  /** Answers the requests in `bytes` while it can; hands the rest to Node's server. */
  #serve(bytes: Buffer): void {
    const { init, headEnd } = this.#front;
    const socket = this.#socket;
    let at = 0;
    while (at < bytes.byteLength && !this.#front.closing && socket.writableLength + this.#heldBytes < MAX_QUEUED_BYTES) {
      const request = parsePlainRequest(bytes, at, init.maxHeadBytes, init.maxFields, this.#origin);
      if (request === PARTIAL || request === OTHER || (this.#origin === undefined && init.mayTargetSelf(request.url))) break;
      let answer: ReturnType<AnswerPlain>;
      try {
        answer = init.answer(request, headEnd);
      } catch {
        break; // Node's server answers it, with the error it is
      }
      if (answer === undefined) break;
      if (answer instanceof Promise) {
        this.#wait(answer, bytes.subarray(at), request.end - at);
        return;
      }
      this.#send(answer, false);
      at = request.end;
    }
    if (at < bytes.byteLength) this.#handOff(bytes.subarray(at));
    else if (this.#front.closing) this.#handOff(undefined);
  }

  /** Waits for an answer looked up for the first request in `bytes` (`length` bytes long), reading nothing meanwhile. */
  #wait(answer: Promise<AtOnceAnswer | undefined>, bytes: Buffer, length: number): void {
    const socket = this.#socket;
    this.#waiting = true;
    this.#unread = bytes;
    socket.pause();
    socket.setTimeout(0); // neither idle nor late: its head came, its answer is on its way
    const done = (got: AtOnceAnswer | undefined): void => {
      const unread = this.#unread!;
      this.#waiting = false;
      this.#unread = undefined;
      if (socket.destroyed) return;
      if (got === undefined) {
        this.#handOff(unread);
        return;
      }
      this.#send(got, true);
      socket.setTimeout(this.#front.init.keepAliveTimeoutMs);
      if (unread.byteLength > length) this.#serve(unread.subarray(length));
      else if (this.#front.closing) this.#handOff(undefined);
      else if (this.#ended) this.#end();
      if (!this.#waiting && !this.#handedOff) socket.resume();
    };
    this.#front.waiting(answer.then(done, () => done(undefined)));
  }

  /**
   * Writes `answer`, or holds it until the end of this turn of the event loop (`turn-writes.ts`) when it was
   * `lookedUp`: such answers take ~100 µs each to make, long enough for a client to sleep between them. Answers
   * at once take a few µs and follow each other closely (holding them cost 2–5% of warm hits). Answers after a
   * held one on the same connection are held too, in order.
   */
  #send(answer: AtOnceAnswer, lookedUp: boolean): void {
    if (this.#held.length > 0 || (lookedUp && !writeNowOrAtTurnEnd(this.#writeHeld))) {
      this.#held.push(answer);
      this.#heldBytes += answer.bytes.byteLength;
    } else this.#write(answer);
    if (!this.#answeredOne) {
      this.#answeredOne = true;
      this.#front.init.answered(this.#socket);
      this.#socket.setTimeout(this.#front.init.keepAliveTimeoutMs);
    }
  }

  /** Writes the answers held until now, in order (a closed socket's are dropped, lent memory given back). */
  writeHeld(): void {
    const socket = this.#socket;
    for (const answer of this.#held) {
      if (!socket.destroyed) this.#write(answer);
      else if (answer.lent) BodyBuffers.give(answer.bytes);
    }
    this.#held.length = 0;
    this.#heldBytes = 0;
  }

  /** Ends the socket after the answers held. */
  #end(): void {
    this.writeHeld();
    this.#socket.end();
  }

  #write(answer: AtOnceAnswer): void {
    const socket = this.#socket;
    if (!answer.lent) socket.write(answer.bytes);
    else if (this.#origin === undefined && answer.bytes.byteLength <= WHOLE_WRITE_MAX) {
      // One write, without a callback: when nothing stays queued, the kernel has copied the bytes and the
      // memory can serve the next answer; otherwise it is left to the collector (a client not reading).
      socket.write(answer.bytes);
      if (socket.writableLength === 0) BodyBuffers.give(answer.bytes);
    } else {
      // A TLS socket takes the bytes once they are encrypted and written below it, later, and a large answer
      // often only in part at once: each comes back in its write's callback, which come in order (a fresh
      // buffer per answer made ~3 times the garbage over TLS).
      this.#inFlight.push(answer.bytes);
      socket.write(answer.bytes, this.#written);
    }
  }

  /** Stops reading the connection here. */
  #release(): void {
    const socket = this.#socket;
    this.#handedOff = true;
    socket.off('data', this.#onData).off('end', this.#onEnd).off('timeout', this.#onTimeout).off('error', ignore).off('close', this.#onClose);
    this.#front.forget(socket);
    socket.setTimeout(0);
  }

  #handOff(unread: Buffer | undefined): void {
    const socket = this.#socket;
    this.writeHeld(); // before anything Node's server writes
    this.#release();
    this.#front.init.handOff(socket, unread);
    // A half-close seen while this connection waited is the new reader's to act on, after the bytes before it.
    if (this.#ended) socket.emit('end');
    if (socket.isPaused()) socket.resume();
  }
}

function ignore(): void {}
