import { CID } from 'multiformats/cid';
import type { SignedRecord } from '../protocol/signature.ts';

/** One line of the record index and of the journal: a request key and the signed record that answers it. */
export interface SignedRecordLine {
  key: string;
  record: string;
  signature: string;
}

export function toLine(key: string, signed: SignedRecord): string {
  const line: SignedRecordLine = { key, record: signed.record.toString(), signature: Buffer.from(signed.signature).toString('base64') };
  return `${JSON.stringify(line)}\n`;
}

/** Parses one line; undefined when it is not a complete, well-formed line (a torn write after a crash). */
export function fromLine(text: string): { key: string; signed: SignedRecord } | undefined {
  try {
    const v = JSON.parse(text) as Partial<SignedRecordLine>;
    if (typeof v.key !== 'string' || typeof v.record !== 'string' || typeof v.signature !== 'string') return undefined;
    const signature = new Uint8Array(Buffer.from(v.signature, 'base64'));
    if (signature.byteLength !== 64) return undefined;
    return { key: v.key, signed: { record: CID.parse(v.record), signature } };
  } catch {
    return undefined;
  }
}

/** Parses a JSON-lines file, returning good lines and the 1-based numbers of bad ones. */
export function parseLines(text: string): { entries: Array<{ key: string; signed: SignedRecord }>; bad: number[] } {
  const entries: Array<{ key: string; signed: SignedRecord }> = [];
  const bad: number[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    const parsed = fromLine(line);
    if (parsed === undefined) bad.push(i + 1);
    else entries.push(parsed);
  });
  return { entries, bad };
}
