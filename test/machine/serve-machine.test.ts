import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { CID } from 'multiformats/cid';
import { startTestOracle } from '../helpers/oracle.ts';
import { startOrigin } from '../helpers/origin.ts';
import { cli, netlockLines, tempDir } from '../helpers/run.ts';
import { startSimulatedJsonRpcMachine } from './simulated-jsonrpc-machine.ts';

describe('fetch-oracle serve-machine (SIMULATED JSON-RPC emulator)', () => {
  it('runs the machine to halt, answering its GIO 0x25 requests with the netlock blocks', async () => {
    const dir = await tempDir('fo-serve-machine-');
    const origin = await startOrigin();
    try {
      origin.route('/f', (_q, r) => {
        r.end('machine input\n');
      });
      const netlock = join(dir.path, 'm.json');
      const rec = await startTestOracle({ mode: 'record', dataDir: join(dir.path, 'data'), netlockPath: netlock });
      await rec.fetch(`${origin.url}/f`);
      const file = await rec.oracle.close();
      await rec.close();
      // The guest would ask for the netlock root, then the record, then the body.
      const [line] = await netlockLines(netlock);
      const wanted = [file!.netlock, line!.record, line!.body!];
      const machine = await startSimulatedJsonRpcMachine({ emulator: '0.21', requests: wanted.map((c) => ({ domain: 0x25, id: CID.parse(c).bytes })) });
      try {
        const r = await cli(['serve-machine', '--netlock', netlock, '--machine', machine.url, '--emulator', '0.21', '--data', join(dir.path, 'data')]);
        expect(r.code, r.stderr).toBe(0);
        expect(JSON.parse(r.stdout)).toMatchObject({ breakReason: 'halted', gioRequests: 3 });
        expect(machine.responses.map((x) => x.code)).toEqual([1, 1, 1]);
        expect(machine.responses[2]!.data.toString()).toBe('machine input\n');
      } finally {
        await machine.close();
      }
    } finally {
      await origin.close();
      await dir.remove();
    }
  });
});
