/**
 * A SIMULATED Nitro Secure Module for tests without Nitro hardware.
 *
 * The simulated build of enclave/nsm/nsm-helper.c (`-DNSM_SIM`, enclave/dist/nsm-helper-sim) sends the raw
 * request CBOR it would have passed to the /dev/nsm ioctl to this server's unix socket (`u32 BE length ‖
 * bytes`) and writes back what it gets. This server answers like the NSM: GetRandom with random bytes, and
 * Attestation with a real COSE_Sign1 ES384 document in the AWS byte layout, signed by a throw-away P-384
 * chain (root → regional → zonal → instance → leaf) whose root the tests pin with `--attestation-root`.
 */
import { createHash, randomBytes } from 'node:crypto';
import { execFile } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import type { Server, Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { decode as cborDecode, encode as cborEncode } from 'cborg';
import { createPki, makeDocument } from '../attestation/synthetic.ts';
import type { CertRole, CertSpec, Pki } from '../attestation/synthetic.ts';

export const ROOT = resolve(import.meta.dirname, '..', '..');
export const NSM_HELPER_SOURCE = join(ROOT, 'enclave', 'nsm', 'nsm-helper.c');
export const NSM_HELPER_SIM = join(ROOT, 'enclave', 'dist', 'nsm-helper-sim');
export const NSM_HELPER_REAL = join(ROOT, 'enclave', 'dist', 'nsm-helper');

/** Builds the helpers (enclave/build.sh) when missing or older than the source. */
export async function ensureNsmHelpers(): Promise<void> {
  const stale = (p: string): boolean => !existsSync(p) || statSync(p).mtimeMs < statSync(NSM_HELPER_SOURCE).mtimeMs;
  if (stale(NSM_HELPER_SIM) || stale(NSM_HELPER_REAL)) await promisify(execFile)('bash', [join(ROOT, 'enclave', 'build.sh'), 'all'], { cwd: ROOT });
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** PCRs of the simulated enclave image: 0/1/2 are SHA-384 of labels (non-zero: not debug mode), 4 set, the rest zero. */
export function simulatedPcrs(): Map<number, Uint8Array> {
  const pcrs = new Map<number, Uint8Array>();
  const sha384 = (label: string): Uint8Array => new Uint8Array(createHash('sha384').update(label).digest());
  for (let i = 0; i < 16; i++) pcrs.set(i, new Uint8Array(48));
  pcrs.set(0, sha384('fetch-oracle simulated enclave image (PCR0)'));
  pcrs.set(1, sha384('simulated kernel and bootstrap (PCR1)'));
  pcrs.set(2, sha384('simulated application (PCR2)'));
  pcrs.set(4, sha384('simulated parent instance (PCR4)'));
  return pcrs;
}

/** A PKI shaped like AWS's whose certificates are valid around `now` (documents are dated now). */
export function pkiValidAround(now = Date.now()): Promise<Pki> {
  const s = (from: number, to: number): Partial<CertSpec> => ({ notBefore: new Date(Math.floor(from / 1000) * 1000), notAfter: new Date(Math.floor(to / 1000) * 1000) });
  const overrides: Partial<Record<CertRole, Partial<CertSpec>>> = {
    regional: s(now - 5 * DAY, now + 15 * DAY),
    zonal: s(now - 2 * DAY, now + 3 * DAY),
    instance: s(now - 6 * HOUR, now + 18 * HOUR),
    leaf: s(now - HOUR, now + 2 * HOUR),
  };
  return createPki(overrides);
}

export interface NsmRequestSeen {
  kind: 'GetRandom' | 'Attestation' | 'other';
  /** undefined: the field was missing or not bytes/null (a malformed request). */
  userData?: Uint8Array | null | undefined;
  nonce?: Uint8Array | null | undefined;
  publicKey?: Uint8Array | null | undefined;
}

export interface SimulatedNsm {
  readonly socketPath: string;
  readonly pki: Pki;
  readonly pcrs: Map<number, Uint8Array>;
  /** Every GetRandom answer, in order. */
  readonly randomGiven: Uint8Array[];
  /** Every decoded request, in order. */
  readonly requests: NsmRequestSeen[];
  /** Every attestation document returned. */
  readonly documents: Uint8Array[];
  /** Replaces the answer to a request (return undefined to answer normally): for failure tests. */
  respond: ((request: NsmRequestSeen) => unknown) | undefined;
  /** Writes the test root (PEM) to `path`, for `verify --attestation-root`. */
  writeRootPem(path: string): Promise<void>;
  close(): Promise<void>;
}

/** Random bytes per GetRandom answer (the NSM returns up to 256). */
export const SIM_RANDOM_BYTES = 256;

async function answer(sim: SimulatedNsm, request: Uint8Array): Promise<Uint8Array> {
  let value: unknown;
  try {
    value = cborDecode(request);
  } catch {
    return cborEncode({ Error: 'InvalidArgument' });
  }
  let seen: NsmRequestSeen = { kind: 'other' };
  const att = typeof value === 'object' && value !== null ? (value as Record<string, unknown>)['Attestation'] : undefined;
  if (value === 'GetRandom') seen = { kind: 'GetRandom' };
  else if (typeof att === 'object' && att !== null) {
    const a = att as Record<string, unknown>;
    const field = (k: string): Uint8Array | null | undefined => (a[k] === null ? null : a[k] instanceof Uint8Array ? a[k] : undefined);
    seen = { kind: 'Attestation', userData: field('user_data'), nonce: field('nonce'), publicKey: field('public_key') };
  }
  sim.requests.push(seen);
  const custom = await sim.respond?.(seen);
  if (custom !== undefined) return custom instanceof Uint8Array ? custom : cborEncode(custom);
  if (seen.kind === 'GetRandom') {
    const random = new Uint8Array(randomBytes(SIM_RANDOM_BYTES));
    sim.randomGiven.push(random);
    return cborEncode({ GetRandom: { random } });
  }
  if (seen.kind === 'Attestation') {
    if (seen.userData === undefined || seen.nonce === undefined || seen.publicKey === undefined) return cborEncode({ Error: 'InvalidArgument' });
    const document = await makeDocument(sim.pki, {
      fields: { timestamp: Date.now(), pcrs: sim.pcrs, public_key: seen.publicKey, user_data: seen.userData, nonce: seen.nonce },
    });
    sim.documents.push(document);
    return cborEncode({ Attestation: { document } });
  }
  return cborEncode({ Error: 'InvalidOperation' });
}

/** Starts the SIMULATED NSM on a unix socket (NSM_SIM_SOCKET for the simulated helper). */
export async function startSimulatedNsm(socketPath: string, pki?: Pki): Promise<SimulatedNsm> {
  const sockets = new Set<Socket>();
  let closing: Promise<void> | undefined;
  const sim: SimulatedNsm = {
    socketPath,
    pki: pki ?? (await pkiValidAround()),
    pcrs: simulatedPcrs(),
    randomGiven: [],
    requests: [],
    documents: [],
    respond: undefined,
    writeRootPem: (path) => writeFile(path, sim.pki.rootPem),
    close: () => {
      closing ??= new Promise<void>((done) => {
        for (const s of sockets) s.destroy();
        server.close(() => done());
      });
      return closing;
    },
  };
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.byteLength < 4) return;
      const len = buffered.readUInt32BE(0);
      if (buffered.byteLength < 4 + len) return;
      const request = new Uint8Array(buffered.subarray(4, 4 + len));
      buffered = Buffer.alloc(0);
      void answer(sim, request).then((response) => {
        const head = Buffer.alloc(4);
        head.writeUInt32BE(response.byteLength);
        socket.end(Buffer.concat([head, response]));
      });
    });
  });
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(socketPath, () => done());
  });
  return sim;
}
