import { describe, expect, it } from 'vitest';
import { deriveDockerfile, instructions } from '../../src/image/derive.ts';

const SDE = [{ name: 'SOURCE_DATE_EPOCH', value: '0' }];

describe('deriveDockerfile', () => {
  it('declares the variables after every FROM and leaves every other byte as it was', () => {
    const text = 'FROM debian AS build\nRUN make\n\nFROM scratch\nCOPY --from=build /out /out\n';
    const d = deriveDockerfile(text, [...SDE, { name: 'CARGO_CACHE_RUSTC_INFO', value: '0' }]);
    expect(d.text).toBe('FROM debian AS build\nARG SOURCE_DATE_EPOCH=0\nARG CARGO_CACHE_RUSTC_INFO=0\nRUN make\n\nFROM scratch\nARG SOURCE_DATE_EPOCH=0\nARG CARGO_CACHE_RUSTC_INFO=0\nCOPY --from=build /out /out\n');
    expect(d.stages).toBe(2);
    expect(d.inserted).toEqual(['stage 1: ARG SOURCE_DATE_EPOCH=0', 'stage 1: ARG CARGO_CACHE_RUSTC_INFO=0', 'stage 2: ARG SOURCE_DATE_EPOCH=0', 'stage 2: ARG CARGO_CACHE_RUSTC_INFO=0']);
    expect(d.kept).toEqual([]);
    // Removing the inserted lines gives the user's file back.
    expect(d.text.replace(/^ARG (SOURCE_DATE_EPOCH|CARGO_CACHE_RUSTC_INFO)=0\n/gm, '')).toBe(text);
  });

  it('inserts after the last line of a continued FROM, with the escape directive and comment lines in it, keeping CRLF', () => {
    const text = '# escape=`\r\nFROM --platform=linux/amd64 `\r\n# a comment inside\r\n  debian:bookworm AS b\r\nRUN dir c:\\ `\r\n  && echo\r\n';
    expect(deriveDockerfile(text, SDE).text).toBe('# escape=`\r\nFROM --platform=linux/amd64 `\r\n# a comment inside\r\n  debian:bookworm AS b\r\nARG SOURCE_DATE_EPOCH=0\r\nRUN dir c:\\ `\r\n  && echo\r\n');
    expect(deriveDockerfile('FROM scratch', SDE).text).toBe('FROM scratch\nARG SOURCE_DATE_EPOCH=0');
    expect(instructions('FROM a \\\n  AS b\nrun x \\\n\n  y\n').map((i) => [i.keyword, i.args, i.lastLine])).toEqual([
      ['FROM', 'a    AS b', 1],
      ['RUN', 'x    y', 4],
    ]);
  });

  it('reports where the Dockerfile sets the variable itself (its value wins there); a global default is brought into each stage', () => {
    const d = deriveDockerfile('FROM a\nENV SOURCE_DATE_EPOCH=5\nRUN x\nFROM b\nARG SOURCE_DATE_EPOCH=7\nFROM c\nENV SOURCE_DATE_EPOCH 9\n', SDE);
    expect(d.kept).toEqual([
      { name: 'SOURCE_DATE_EPOCH', stage: 1, instruction: 'ENV SOURCE_DATE_EPOCH=5' },
      { name: 'SOURCE_DATE_EPOCH', stage: 2, instruction: 'ARG SOURCE_DATE_EPOCH=7' },
      { name: 'SOURCE_DATE_EPOCH', stage: 3, instruction: 'ENV SOURCE_DATE_EPOCH 9' },
    ]);
    // The inserted default comes first, so the Dockerfile's own ARG/ENV override it from there on.
    expect(d.text).toBe('FROM a\nARG SOURCE_DATE_EPOCH=0\nENV SOURCE_DATE_EPOCH=5\nRUN x\nFROM b\nARG SOURCE_DATE_EPOCH=0\nARG SOURCE_DATE_EPOCH=7\nFROM c\nARG SOURCE_DATE_EPOCH=0\nENV SOURCE_DATE_EPOCH 9\n');
    const g = deriveDockerfile('ARG SOURCE_DATE_EPOCH=1700000000\nFROM a\nRUN x\n', SDE);
    expect(g.text).toBe('ARG SOURCE_DATE_EPOCH=1700000000\nFROM a\nARG SOURCE_DATE_EPOCH\nRUN x\n');
    expect(g.kept).toEqual([{ name: 'SOURCE_DATE_EPOCH', stage: 0, instruction: 'ARG SOURCE_DATE_EPOCH=1700000000' }]);
    // A bare declaration and other variables do not count as setting it.
    expect(deriveDockerfile('FROM a\nARG SOURCE_DATE_EPOCH\nENV OTHER=1\n', SDE).kept).toEqual([]);
  });

  it('quotes a value that is not a plain word', () => {
    expect(deriveDockerfile('FROM a\n', [{ name: 'X', value: 'a b$c' }]).text).toBe('FROM a\nARG X="a b\\$c"\n');
  });
});
