// Issue #12 benchmark: the real Cartesi Machine (emulator v0.21 + kernel of ../shared/cartesi, or --emulator /
// --kernel), in one run, with fresh snapshots:
//   1. a cold boot (it stores the snapshot): kernel start → init (dmesg), → shim ready (mcycle at the config yield);
//   2. from the snapshot, per body size: `curl -o /tmp/f` of a replayed body, then `sha256sum /tmp/f`, both timed
//      inside the guest with /proc/uptime (the in-machine limit: every byte must be hashed once);
//   3. from the snapshot, the shim stopped, `cmio-helper` asking the host N times for one 20-byte block: the
//      host's wall time per GIO round trip (the interval between consecutive requests as the host sees them).
// Prints a markdown table against the issue's targets.
// Usage: npm run bench:machine [-- --image FILE --sizes 10,100 --round-trips 1000 --emulator DIR --kernel FILE -v]
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { parseArgs } from 'node:util';
import { CID } from 'multiformats/cid';
import { createLogger, NOOP_LOGGER } from '../src/log.ts';
import { locateMachineTools } from '../src/machine/emulator.ts';
import { answerGio, GIO_DOMAIN_IPFS_BLOCK } from '../src/machine/gio-responder.ts';
import type { GioHandler } from '../src/machine/gio-responder.ts';
import { runInMachine } from '../src/machine/machine-run.ts';
import type { MachineRunOutcome } from '../src/machine/machine-run.ts';
import { SnapshotCache } from '../src/machine/snapshot.ts';
import { readNetlockRoot } from '../src/netlock/file.ts';
import { LocalSigner } from '../src/signing/local-signer.ts';
import { FsBlockStore } from '../src/store/fs-block-store.ts';
import { EMULATOR_DIR, KERNEL } from '../test/helpers/cartesi.ts';
import { testMachineImage } from '../test/helpers/machine-image.ts';
import { startTestOracle } from '../test/helpers/oracle.ts';
import { pseudoRandomChunks, startOrigin } from '../test/helpers/origin.ts';

const { values } = parseArgs({
  options: {
    image: { type: 'string' },
    emulator: { type: 'string', default: EMULATOR_DIR },
    kernel: { type: 'string', default: KERNEL },
    sizes: { type: 'string', default: '10,100' },
    'round-trips': { type: 'string', default: '1000' },
    verbose: { type: 'boolean', short: 'v', default: false },
  },
});
const SIZES_MIB = values.sizes.split(',').map(Number);
const ROUND_TRIPS = Number(values['round-trips']);
if (SIZES_MIB.some((n) => !Number.isInteger(n) || n < 1) || !Number.isInteger(ROUND_TRIPS) || ROUND_TRIPS < 2) throw new Error('--sizes takes MiB counts (10,100), --round-trips an integer ≥ 2');
/** The guest's clocks count emulated cycles at 128 MHz (the emulator's RTC): guest seconds = mcycle / 128e6. */
const GUEST_HZ = 128e6;
const MiB = 1024 * 1024;
const TINY = Buffer.from('twenty bytes, no more'.slice(0, 20));

const image = values.image ?? (await testMachineImage()).image;
const tools = locateMachineTools({ emulatorDir: values.emulator, kernel: values.kernel });
const dir = await mkdtemp(join(tmpdir(), 'fo-bench-machine-'));
const data = join(dir, 'data');
const netlockPath = join(dir, 'bench.netlock.json');
const origin = await startOrigin();
const say = (line: string): void => void process.stderr.write(`bench:machine: ${line}\n`);

try {
  for (const mib of SIZES_MIB) {
    origin.route(`/body-${mib}`, async (_q, r) => {
      r.writeHead(200, { 'content-length': String(mib * MiB) });
      for (const c of pseudoRandomChunks(mib * MiB, mib)) if (!r.write(c)) await new Promise((d) => r.once('drain', d));
      r.end();
    });
  }
  origin.route('/tiny', (_q, r) => {
    r.end(TINY);
  });
  const urls = [...SIZES_MIB.map((m) => `${origin.url}/body-${m}`), `${origin.url}/tiny`];
  const rec = await startTestOracle({ mode: 'record', dataDir: data, netlockPath });
  for (const u of urls) if ((await rec.fetch(u)).status !== 200) throw new Error(`recording ${u} failed`);
  await rec.oracle.close();
  await rec.close();
  const entries = (JSON.parse(await readFile(netlockPath, 'utf8')) as { entries: Array<{ url: string; body: string; sha256: string }> }).entries;
  const entry = (url: string): { body: string; sha256: string } => entries.find((e) => e.url === url)!;
  say(`recorded ${urls.length} bodies (${SIZES_MIB.join(', ')} MiB and 20 bytes); image ${image}`);

  const store = new FsBlockStore(data);
  const trust = [(await LocalSigner.publicKeyIn(data))!];
  const root = (await readNetlockRoot(netlockPath)).root;
  const snapshots = new SnapshotCache(join(data, 'machine-snapshots'), NOOP_LOGGER);
  /** Host time and id of every 0x25 request of the current run: consecutive ones bound one whole round trip. */
  let requests: Array<{ t: number; id: string }> = [];
  const blockHandler: GioHandler = (id, signal) => {
    requests.push({ t: performance.now(), id: Buffer.from(id).toString('hex') });
    return answerGio(GIO_DOMAIN_IPFS_BLOCK, id, store, signal === undefined ? {} : { signal });
  };

  const machine = async (name: string, script: string, inputDir?: string, useSnapshots = true): Promise<{ outcome: MachineRunOutcome; console: string; wallMs: number }> => {
    requests = [];
    let text = '';
    const sink = new Writable({
      write: (c: Buffer, _e, done) => {
        text += c.toString();
        if (values.verbose) process.stderr.write(c);
        done();
      },
    });
    const started = performance.now();
    const outcome = await runInMachine({
      tools, image, netlockRoot: root, store, blockHandler, trust, argv: ['sh', '-c', script], env: {},
      ...(inputDir === undefined ? {} : { inputDir }),
      ramMib: 2048, inputMib: 64, outputMib: 256, ...(useSnapshots ? { snapshots } : {}), console: sink,
      logger: values.verbose ? createLogger('bench') : NOOP_LOGGER,
    });
    const wallMs = performance.now() - started;
    if (outcome.result.fatal !== undefined || outcome.result.exit !== 0) throw new Error(`${name}: exit ${outcome.result.exit} ${outcome.result.fatal ?? ''}\n${text.slice(-3000)}`);
    say(`${name}: ${outcome.start}, ${(wallMs / 1000).toFixed(1)} s host, halted at mcycle ${outcome.mcycle} (${(Number(outcome.mcycle) / GUEST_HZ).toFixed(1)} s guest)`);
    return { outcome, console: text, wallMs };
  };
  const line = (text: string, tag: string): Record<string, string> => {
    const m = new RegExp(`FO-BENCH ${tag} (.*)`).exec(text);
    if (m === null) throw new Error(`no "FO-BENCH ${tag}" line in the guest's output:\n${text.slice(-3000)}`);
    return Object.fromEntries(m[1]!.trim().split(/\s+/).map((kv) => kv.split('=') as [string, string]));
  };
  const span = (pair: string): number => {
    const [a, b] = pair.split(',').map(Number);
    return b! - a!;
  };
  const UPTIME = 'up() { read u _ </proc/uptime; echo "$u"; }';

  // 1. Cold boot, storing nothing (its host time to ready is then the boot's alone): when the kernel started
  //    init (dmesg) and when the shim was ready (mcycle at the config yield).
  const boot = await machine('cold boot', `${UPTIME}\necho "FO-BENCH boot init=$(dmesg | sed -n 's/^\\[ *\\([0-9.]*\\)\\].*Run .* as init process.*/\\1/p' | head -n 1) cmd=$(up)"`, undefined, false);
  const b = line(boot.console, 'boot');
  const initS = Number(b['init']);
  const readyS = Number(boot.outcome.readyMcycle) / GUEST_HZ;

  // 2. Bodies, each in its own run from the snapshot (the first run stores it), so the device counters are the body's.
  const bodies: Array<{ mib: number; start: MachineRunOutcome['start']; mcycle: bigint; readyMcycle: bigint; replayS: number; shaS: number; trips: number; handlerMs: number; readyMs: number; wallMs: number }> = [];
  for (const mib of SIZES_MIB) {
    const url = `${origin.url}/body-${mib}`;
    const script = `set -e\n${UPTIME}\nt0=$(up); curl -sS -x "$HTTP_PROXY" -o /tmp/f ${url}; t1=$(up); sum=$(sha256sum /tmp/f | cut -d' ' -f1); t2=$(up)\necho "FO-BENCH body size=$(wc -c </tmp/f) replay=$t0,$t1 sha=$t1,$t2 sum=$sum"`;
    const r = await machine(`${mib} MiB body`, script);
    const got = line(r.console, 'body');
    if (got['sum'] !== entry(url).sha256 || Number(got['size']) !== mib * MiB) throw new Error(`${mib} MiB body: the guest got ${got['size']} bytes with sha256 ${got['sum']}, recorded ${entry(url).sha256}`);
    const d = r.outcome.driver;
    const blocks = d.byDomain[GIO_DOMAIN_IPFS_BLOCK] ?? 0;
    bodies.push({ mib, start: r.outcome.start, mcycle: r.outcome.mcycle, readyMcycle: r.outcome.readyMcycle, replayS: span(got['replay']!), shaS: span(got['sha']!), trips: blocks, handlerMs: (d.hostMsByDomain[GIO_DOMAIN_IPFS_BLOCK] ?? 0) / blocks, readyMs: r.outcome.readyMs, wallMs: r.wallMs });
  }

  // 3. Round trips: the shim stopped (it holds /dev/cmio), the helper asks for one 20-byte block N times.
  const tiny = CID.parse(entry(`${origin.url}/tiny`).body);
  const frame = Buffer.alloc(4 + tiny.bytes.byteLength);
  frame.writeUInt32BE(tiny.bytes.byteLength, 0);
  frame.set(tiny.bytes, 4);
  const loopInput = join(dir, 'loop-input');
  await mkdir(loopInput);
  await writeFile(join(loopInput, 'frames.bin'), Buffer.concat(Array.from({ length: ROUND_TRIPS }, () => frame)));
  const loopScript = `set -e\n${UPTIME}\nkill -TERM $(pidof node)\ni=0; until cmio-helper --probe >/dev/null 2>&1; do i=$((i+1)); [ $i -lt 600 ] || exit 3; sleep 0.1; done\nt0=$(up); cmio-helper <frames.bin >/tmp/replies; t1=$(up)\necho "FO-BENCH loop bytes=$(wc -c </tmp/replies) guest=$t0,$t1"`;
  const loop = await machine(`${ROUND_TRIPS} round trips`, loopScript, loopInput);
  const lg = line(loop.console, 'loop');
  if (Number(lg['bytes']) !== ROUND_TRIPS * (8 + TINY.byteLength)) throw new Error(`the helper got ${lg['bytes']} reply bytes, expected ${ROUND_TRIPS * (8 + TINY.byteLength)}`);
  const tinyHex = Buffer.from(tiny.bytes).toString('hex');
  const loopTimes = requests.filter((q) => q.id === tinyHex).map((q) => q.t).slice(-ROUND_TRIPS);
  const gaps = loopTimes.slice(1).map((t, i) => t - loopTimes[i]!).sort((x, y) => x - y);
  const meanGapMs = (loopTimes.at(-1)! - loopTimes[0]!) / (loopTimes.length - 1);
  const medianGapMs = gaps[Math.floor(gaps.length / 2)]!;
  const loopGuestMs = (span(lg['guest']!) * 1000) / ROUND_TRIPS;
  const ld = loop.outcome.driver;
  const loopHandlerMs = (ld.hostMsByDomain[GIO_DOMAIN_IPFS_BLOCK] ?? 0) / (ld.byDomain[GIO_DOMAIN_IPFS_BLOCK] ?? 1);
  const snapshotReadyMs = [...bodies.filter((x) => x.start === 'snapshot').map((x) => x.readyMs), loop.outcome.readyMs].sort((x, y) => x - y);
  // The emulator's speed, from the biggest body's run (after the config yield it is mostly emulation), to
  // take the guest's own share out of a round trip's wall time.
  const biggest = bodies.at(-1)!;
  const guestPerHost = (Number(biggest.mcycle - biggest.readyMcycle) / GUEST_HZ) / ((biggest.wallMs - biggest.readyMs) / 1000);
  /** What the host adds to a round trip: its wall time less the time it took to emulate the guest's share. */
  const hostCostMs = medianGapMs - loopGuestMs / guestPerHost;

  const mb = (mib: number, s: number): string => `${((mib * MiB) / 1e6 / s).toFixed(2)} MB/s`;
  const verdict = (ok: boolean): string => (ok ? 'met' : 'not met');
  const rows: string[][] = [
    ['boot to entrypoint (kernel start → init, dmesg)', `${initS.toFixed(2)} s guest`, '—', ''],
    ['shim ready, cold boot (kernel start → config yield)', `${readyS.toFixed(1)} s guest (init → ready ${(readyS - initS).toFixed(1)} s); ${(boot.outcome.readyMs / 1000).toFixed(1)} s host`, '≤ 3 s guest', verdict(readyS <= 3)],
    ['shim ready, from the snapshot (emulator start → config yield)', `0 s guest; ${snapshotReadyMs.map((x) => (x / 1000).toFixed(2)).join(' / ')} s host`, '≤ 3 s guest', verdict(true)],
  ];
  for (const x of bodies) {
    const ratio = x.shaS / x.replayS;
    rows.push([`${x.mib} MiB body: curl through the shim → /tmp/f`, `${x.replayS.toFixed(1)} s guest, ${mb(x.mib, x.replayS)}`, '', '']);
    rows.push([`${x.mib} MiB: sha256sum /tmp/f in the machine`, `${x.shaS.toFixed(1)} s guest, ${mb(x.mib, x.shaS)}`, '', '']);
    rows.push([`${x.mib} MiB: replay rate / sha256sum rate`, `${ratio.toFixed(2)}×`, '≥ 0.8×', verdict(ratio >= 0.8)]);
    rows.push([`${x.mib} MiB: GIO 0x25 round trips`, `${x.trips} (${(x.trips / x.mib).toFixed(3)} per MiB); host work ${x.handlerMs.toFixed(2)} ms per block`, '', '']);
  }
  rows.push(['emulation speed (the biggest body\'s run, after the config yield)', `${guestPerHost.toFixed(2)} guest s per host s`, '', '']);
  rows.push([`wall per GIO round trip (${ROUND_TRIPS} × a 20-byte block, cmio-helper loop)`, `median ${medianGapMs.toFixed(3)} ms, mean ${meanGapMs.toFixed(3)} ms; the guest's share ${loopGuestMs.toFixed(3)} ms of guest time`, '', '']);
  rows.push(['host cost per round trip (wall − emulating the guest\'s share)', `${hostCostMs.toFixed(3)} ms, of which answering (store read, sha256, base64) ${loopHandlerMs.toFixed(3)} ms`, '≤ 0.5 ms', verdict(hostCostMs <= 0.5)]);
  process.stdout.write(`\nCartesi Machine (#12), ${new Date().toISOString().slice(0, 10)}, emulator ${tools.emulator}, image ${image}\n\n| measure | measured | target | |\n|---|---|---|---|\n${rows.map((r) => `| ${r.join(' | ')} |`).join('\n')}\n`);
  await store.close();
} finally {
  await origin.close();
  await rm(dir, { recursive: true, force: true });
}
