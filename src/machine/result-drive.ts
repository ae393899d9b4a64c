/**
 * The result drive (/dev/pmem3, 4 KiB), written by the init just before it powers off: NUL-padded text lines
 * `fetch-oracle-result 1`, `exit N`, `output BYTES`, and `fatal TEXT` when the run must not be trusted. The
 * kernel's halt carries no exit code (the emulator's halt code is always 0), so this is how CMD's status,
 * the output tar's length and a guest-side failure leave the machine.
 */
import { MachineError } from '../errors.ts';

export const RESULT_MAGIC = 'fetch-oracle-result 1';

export interface RunResult {
  /** CMD's exit status (128 + N when signal N ended it). */
  exit: number;
  /** Bytes of the tar at the start of the output drive (0: none). */
  outputBytes: number;
  /** Set when the guest stopped the run (a block that does not hash to its CID, no config…). */
  fatal?: string;
}

/** Reads the result drive; a MachineError when the guest never wrote one (it crashed, or never got that far). */
export function parseResultDrive(bytes: Uint8Array): RunResult {
  const end = bytes.indexOf(0);
  const text = Buffer.from(bytes.subarray(0, end < 0 ? bytes.byteLength : end)).toString('utf8');
  const lines = text.split('\n');
  if (lines[0] !== RESULT_MAGIC) {
    throw new MachineError(text === '' ? 'The machine halted without writing a result (the init did not finish: see the console output above)' : `The result drive does not start with "${RESULT_MAGIC}": ${JSON.stringify(text.slice(0, 80))}`);
  }
  const fields = new Map<string, string>();
  for (const line of lines.slice(1)) {
    const m = /^([a-z]+) (.*)$/.exec(line);
    if (m !== null && !fields.has(m[1]!)) fields.set(m[1]!, m[2]!);
  }
  const num = (key: string): number => {
    const v = fields.get(key);
    if (v === undefined || !/^\d+$/.test(v) || !Number.isSafeInteger(Number(v))) throw new MachineError(`The result drive has no valid "${key}" line: ${JSON.stringify(text.slice(0, 200))}`);
    return Number(v);
  };
  const fatal = fields.get('fatal');
  return { exit: num('exit'), outputBytes: num('output'), ...(fatal === undefined || fatal.trim() === '' ? {} : { fatal: fatal.trim() }) };
}
