import { resolve } from 'node:path';
import type { Command, CommandContext } from './command.ts';
import { parseAddress, parseCommandLine, stderrLogger, UsageError } from './common.ts';
import { startMetricsServer } from '../admin/metrics-server.ts';
import type { AdminServer } from '../admin/server.ts';
import type { Logger } from '../log.ts';
import { OracleMetrics } from '../report/metrics.ts';
import type { BlockStore } from '../store/block-store.ts';
import { MachineDriver } from '../machine/machine-driver.ts';
import { EMULATOR_VERSIONS } from '../machine/machine-rpc-methods.ts';
import type { EmulatorVersion } from '../machine/machine-rpc-methods.ts';
import { startGioSimulator } from '../machine/sim/gio-simulator.ts';
import { verifyingSource } from '../protocol/blocks.ts';
import { NetlockReader } from '../netlock/dag.ts';
import { netlockRootOf } from '../netlock/file.ts';
import { FsBlockStore } from '../store/fs-block-store.ts';

export const SERVE_MACHINE_HELP = `Usage: fetch-oracle serve-machine --netlock FILE --machine URL [--emulator 0.19|0.20|0.21] [--data DIR] [--metrics HOST:PORT]
       fetch-oracle serve-machine --netlock FILE --simulate-socket PATH [--data DIR] [--metrics HOST:PORT]

Answers the Cartesi Machine's dehashing device (GIO domain 0x25: a block by binary CID) from this host's block
store, for a machine whose guest shim replays FILE.

  --machine URL          a running cartesi-jsonrpc-machine server (with the machine loaded): run it to halt,
                         answering every GIO request; prints the final mcycle and the requests answered
  --emulator VERSION     its method table (default: detected with get_version)
  --simulate-socket PATH instead of an emulator, serve the SIMULATED device on a unix socket for the host build
                         of the cmio helper (CMIO_SIM_SOCKET=PATH), until SIGINT/SIGTERM: for trying the guest
                         shim on the host
  --data DIR             data directory holding the blocks (default as for record)
  --metrics HOST:PORT    serve GET /metrics (Prometheus text: device round trips, block store operations) while
                         it runs; loopback, or with --admin-token off loopback (docs/report.md)
  --admin-token TOKEN    bearer token for --metrics (default $FETCH_ORACLE_ADMIN_TOKEN)
`;

export const serveMachineCommand: Command = {
  help: SERVE_MACHINE_HELP,
  run: (args, context) => runServeMachine(args, context.defaultDataDir, context),
};

/** `fetch-oracle serve-machine …`; returns the exit code. */
export async function runServeMachine(args: string[], dataDirDefault: string, context: Pick<CommandContext, 'stdout'>): Promise<number> {
  const out = (t: string): void => void context.stdout.write(t);
  const { values } = parseCommandLine({
    args,
    strict: true,
    options: {
      netlock: { type: 'string' },
      machine: { type: 'string' },
      emulator: { type: 'string' },
      'simulate-socket': { type: 'string' },
      data: { type: 'string' },
      metrics: { type: 'string' },
      'admin-token': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  }, SERVE_MACHINE_HELP);
  if (values.help === true) {
    out(SERVE_MACHINE_HELP);
    return 0;
  }
  if (values.netlock === undefined || (values.machine === undefined) === (values['simulate-socket'] === undefined)) {
    throw new UsageError(`serve-machine needs --netlock FILE and exactly one of --machine URL or --simulate-socket PATH\n\n${SERVE_MACHINE_HELP}`);
  }
  const logger = stderrLogger();
  // Round trips are read at scrape time from whichever side answers the device (set below).
  let roundTrips = (): number => 0;
  const metrics = new OracleMetrics({ deviceRoundTrips: () => roundTrips() });
  const store = metrics.countingStore(new FsBlockStore(resolve(values.data ?? dataDirDefault)));
  const metricsServer = await startMetrics(values.metrics, values['admin-token'], metrics, out);
  try {
    return await serve(values, store, logger, out, (read) => (roundTrips = read));
  } finally {
    await metricsServer?.close();
  }
}

async function startMetrics(listen: string | undefined, tokenFlag: string | undefined, metrics: OracleMetrics, out: (t: string) => void): Promise<AdminServer | undefined> {
  if (listen === undefined) return undefined;
  const address = parseAddress(listen, '--metrics');
  if ('path' in address) throw new UsageError('--metrics expects HOST:PORT');
  const token = tokenFlag ?? process.env['FETCH_ORACLE_ADMIN_TOKEN'];
  const server = await startMetricsServer(address, () => metrics.scrape(), token === '' ? undefined : token);
  const a = server.address();
  out(`metrics http://${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}/metrics\n`);
  return server;
}

async function serve(
  values: { netlock?: string; machine?: string; emulator?: string; 'simulate-socket'?: string },
  store: BlockStore,
  logger: Logger,
  out: (t: string) => void,
  countFrom: (read: () => number) => void,
): Promise<number> {
  // Fail early, before the machine runs, if this host cannot even read the netlock's root.
  const root = await netlockRootOf(values.netlock!);
  const rootValue = await new NetlockReader(root, verifyingSource(store)).rootValue();
  logger.info('serving blocks of netlock %s (%d entries)', root.toString(), rootValue.count);
  if (values['simulate-socket'] !== undefined) {
    const sim = await startGioSimulator({ socketPath: resolve(values['simulate-socket']), source: store, logger });
    countFrom(() => sim.stats.requests);
    out(`simulating the device on ${sim.socketPath}\n`);
    await new Promise<void>((done) => {
      process.once('SIGINT', () => done());
      process.once('SIGTERM', () => done());
    });
    await sim.close();
    out(`answered ${sim.stats.requests} requests, ${sim.stats.bytes} bytes\n`);
    return 0;
  }
  const emulatorFlag = values.emulator;
  if (emulatorFlag !== undefined && !(EMULATOR_VERSIONS as readonly string[]).includes(emulatorFlag)) {
    throw new UsageError(`--emulator must be one of ${EMULATOR_VERSIONS.join(', ')}`);
  }
  const emulator = (emulatorFlag as EmulatorVersion | undefined) ?? (await MachineDriver.detectEmulatorVersion(values.machine!));
  const driver = new MachineDriver({ url: values.machine!, emulator, source: store, logger });
  countFrom(() => driver.stats.gioRequests);
  try {
    const result = await driver.run();
    out(`${JSON.stringify({ breakReason: result.breakReason, mcycle: result.mcycle.toString(), gioRequests: result.gioRequests })}\n`);
    return result.breakReason === 'halted' ? 0 : 1;
  } finally {
    await driver.close();
  }
}
