import { createHash } from 'node:crypto';
import { mkdir, readFile, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProvenanceStatement } from '../../src/protocol/provenance.ts';
import { cartesiProblem, IN_CI, MACHINE_FLAGS, machineImage } from '../helpers/cartesi.ts';
import { startTestOracle } from '../helpers/oracle.ts';
import { startOrigin } from '../helpers/origin.ts';
import type { Origin } from '../helpers/origin.ts';
import { cli, tempDir } from '../helpers/run.ts';
import type { RunResult } from '../helpers/run.ts';
import { IN_TOTO_AVAILABLE, inTotoVerify } from './in-toto-python.ts';

const sha256 = (b: Uint8Array | string): string => createHash('sha256').update(b).digest('hex');
const fixture = cartesiProblem();
const built = fixture === undefined ? await machineImage() : { problem: fixture };
const problem = 'problem' in built ? built.problem : undefined;
const explain = (r: RunResult): string => `exit ${r.code}\n--- stdout\n${r.stdout}\n--- stderr\n${r.stderr.split('\n').slice(-40).join('\n')}`;

describe.skipIf(problem !== undefined && !IN_CI)(`fetch-oracle machine run --provenance in the real Cartesi Machine${problem === undefined ? '' : ` [skipped: ${problem}]`}`, () => {
  let dir: Awaited<ReturnType<typeof tempDir>>;
  let data: string;
  let netlock: string;
  let image: string;
  let origin: Origin;
  const body = 'a dependency fetched inside the machine\n';

  beforeAll(async () => {
    if (problem !== undefined) throw new Error(`The real Cartesi Machine is required under CI: ${problem}`);
    image = (built as { image: string }).image;
    dir = await tempDir('fo-machine-provenance-');
    data = join(dir.path, 'data');
    origin = await startOrigin();
    origin.route('/dep.txt', (_q, r) => {
      r.end(body);
    });
    netlock = join(dir.path, 'm.netlock.json');
    const rec = await startTestOracle({ mode: 'record', dataDir: data, netlockPath: netlock });
    expect((await rec.fetch(`${origin.url}/dep.txt`)).status).toBe(200);
    await rec.oracle.close();
    await rec.close();
    const shared = join(tmpdir(), 'fetch-oracle-test-machine-snapshots');
    await mkdir(shared, { recursive: true });
    await symlink(shared, join(data, 'machine-snapshots'));
  }, 600_000);

  afterAll(async () => {
    await origin?.close();
    await dir?.remove();
  });

  it('a clean replay run in the real Cartesi Machine writes a statement whose subjects are the output files and whose byproduct is the root hash', async () => {
    const out = join(dir.path, 'out');
    const prov = join(dir.path, 'machine.intoto.jsonl');
    const script = `curl -sS -o "$FETCH_ORACLE_OUTPUT/dep.txt" ${origin.url}/dep.txt && echo built > "$FETCH_ORACLE_OUTPUT/result.txt"`;
    const r = await cli(['machine', 'run', '--replay', netlock, '--data', data, '--image', image, ...MACHINE_FLAGS, '--output', out, '--provenance', prov, '--', 'sh', '-c', script], { timeoutMs: 300_000 });
    expect(r.code, explain(r)).toBe(0);
    const rootHash = /root hash: ([0-9a-f]{64})/.exec(r.stdout)![1]!;
    const envelope = JSON.parse((await readFile(prov, 'utf8')).trim()) as { payload: string };
    const st = JSON.parse(Buffer.from(envelope.payload, 'base64').toString('utf8')) as ProvenanceStatement;
    expect(st.subject).toEqual([
      { name: `${out}/dep.txt`, digest: { sha256: sha256(body) } },
      { name: `${out}/result.txt`, digest: { sha256: sha256('built\n') } },
    ]);
    expect(st.predicate.buildDefinition.externalParameters).toMatchObject({ tool: 'machine run', command: ['sh', '-c', script] });
    expect(st.predicate.buildDefinition.resolvedDependencies.slice(1).map((d) => d.uri)).toEqual([`${origin.url}/dep.txt`]);
    expect(st.predicate.runDetails.byproducts).toEqual([{ name: 'cartesi-machine-root-hash', content: Buffer.from(rootHash, 'hex').toString('base64'), mediaType: 'application/octet-stream' }]);
    const key = (JSON.parse(await readFile(join(data, 'oracle-key.json'), 'utf8')) as { publicKey: string }).publicKey;
    const verified = await cli(['provenance', '--verify', prov, '--trust', key, '--netlock', netlock, '--data', data, '--subject', out]);
    expect(verified.code, explain(verified)).toBe(0);
    if (IN_TOTO_AVAILABLE) {
      const py = await inTotoVerify(prov, key);
      expect(py.code, py.stderr).toBe(0);
    }
  }, 600_000);
});
