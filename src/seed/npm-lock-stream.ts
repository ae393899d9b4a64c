import { createReadStream } from 'node:fs';
import { TokenParser, TokenParserError, TokenType, Tokenizer, TokenizerError } from '@streamparser/json';
import { InvalidLockfileError } from '../errors.ts';
import { npmPackages } from './parse-npm-lock.ts';
import type { LockPackage } from './parse-npm-lock.ts';
import type { SeedPlan } from './types.ts';

/** Bytes read at a time. */
const CHUNK_BYTES = 256 * 1024;

/**
 * Line numbers of byte offsets in a file read chunk by chunk, asked for in increasing order: each newline is
 * counted once. A token begun in an earlier chunk has no newline in it, so it is on the line its chunk began.
 */
class ByteLines {
  #chunk: Uint8Array = new Uint8Array(0);
  #chunkStart = 0;
  /** Offset up to which newlines are counted, and the line there. */
  #counted = 0;
  #line = 1;

  /** The next chunk of the file. */
  next(chunk: Uint8Array): void {
    this.at(this.#chunkStart + this.#chunk.byteLength);
    this.#chunkStart += this.#chunk.byteLength;
    this.#chunk = chunk;
  }

  /** The 1-based line of the byte at `offset`. */
  at(offset: number): number {
    const end = Math.min(offset, this.#chunkStart + this.#chunk.byteLength) - this.#chunkStart;
    for (let i = this.#chunk.indexOf(10, this.#counted - this.#chunkStart); i !== -1 && i < end; i = this.#chunk.indexOf(10, i + 1)) this.#line++;
    this.#counted = Math.max(this.#counted, end + this.#chunkStart);
    return this.#line;
  }
}

/**
 * A package-lock.json or npm-shrinkwrap.json of lockfileVersion 2 or 3 read as a stream: each entry of
 * `packages` becomes a seed entry as it is parsed (@streamparser/json), and the rest of the file (the
 * `dependencies` tree v2 also carries) is dropped as it goes. Read whole, a 100,000-package lockfile was its
 * text and its parsed document at once, on top of the entries: the seed's peak (issue #15). Entries, warnings
 * and errors are those of `parseNpmLock`, with the same file:line. Undefined for a lockfileVersion 1 file, which
 * has only the nested `dependencies`: `parseNpmLock` reads it whole.
 */
export async function readNpmLockStream(path: string, file = path, signal?: AbortSignal): Promise<SeedPlan | undefined> {
  const { add, plan } = npmPackages(file);
  const lines = new ByteLines();
  const parser = new TokenParser({ paths: ['$.lockfileVersion', '$.packages.*'], keepStack: false });
  const tokenizer = new Tokenizer({ stringBufferSize: 64 * 1024 }); // strings decoded whole, not built a character at a time
  let depth = 0;
  let first = true;
  let topKey: string | undefined;
  let valueOf: string | undefined;
  let key: { value: string; line: number } | undefined;
  let tokenLine = 1;
  let entryLine = 1;
  let version: unknown;
  let versionLine = 0;
  let packagesAre = 'absent' as 'object' | 'other' | 'absent'; // set by the token callback

  parser.onValue = ({ value, key: name, parent, stack }) => {
    if (stack.length === 1) {
      if (name === 'lockfileVersion') version = value;
      return;
    }
    if (typeof name !== 'string' || Array.isArray(parent) || name === '') return;
    if (value === null || typeof value !== 'object') throw new InvalidLockfileError(file, entryLine, `entry ${JSON.stringify(name)} is not an object`);
    add(name, value as LockPackage, entryLine);
  };
  tokenizer.onToken = (info) => {
    const { token } = info;
    tokenLine = lines.at(info.offset);
    if (first) {
      first = false;
      if (token !== TokenType.LEFT_BRACE) throw new InvalidLockfileError(file, 1, 'not a package-lock.json (expected a JSON object)');
    }
    if (token === TokenType.COLON && key !== undefined) {
      // The string before a colon is a key: of the top level, or of an entry of `packages`.
      if (depth === 1) {
        topKey = key.value;
        valueOf = key.value;
        if (topKey === 'lockfileVersion') versionLine = key.line;
      } else if (depth === 2 && topKey === 'packages') {
        entryLine = key.line;
      }
    } else if (depth === 1 && valueOf !== undefined && token !== TokenType.COLON) {
      if (valueOf === 'packages') packagesAre = token === TokenType.LEFT_BRACE ? 'object' : 'other';
      valueOf = undefined;
    }
    key = token === TokenType.STRING ? { value: info.value as string, line: tokenLine } : undefined;
    if (token === TokenType.LEFT_BRACE || token === TokenType.LEFT_BRACKET) depth++;
    else if (token === TokenType.RIGHT_BRACE || token === TokenType.RIGHT_BRACKET) depth--;
    parser.write(info);
  };

  const stream = createReadStream(path, { highWaterMark: CHUNK_BYTES, ...(signal === undefined ? {} : { signal }) });
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      lines.next(chunk);
      tokenizer.write(chunk); // bytes after the document too: the tokenizer refuses them
    }
    // A document cut short is found at the end of the file, which is where it is wrong.
    tokenLine = lines.at(Number.MAX_SAFE_INTEGER);
    if (!tokenizer.isEnded) tokenizer.end();
  } catch (err) {
    if (!(err instanceof TokenizerError || err instanceof TokenParserError)) throw err;
    // A tokenizer error says where its byte is; a token parser error is about the last token.
    const at = /absolute position "?(\d+)/.exec(err.message);
    throw new InvalidLockfileError(file, at === null ? tokenLine : lines.at(Number(at[1])), `not valid JSON: ${err.message}`, { cause: err });
  } finally {
    stream.destroy();
  }
  if (typeof version !== 'number' || ![1, 2, 3].includes(version)) throw new InvalidLockfileError(file, versionLine || 1, `unsupported lockfileVersion ${JSON.stringify(version)} (expected 1, 2 or 3)`);
  if (version === 1) return undefined;
  if (packagesAre !== 'object') throw new InvalidLockfileError(file, 1, `lockfileVersion ${version} without a "packages" object`);
  return plan;
}
