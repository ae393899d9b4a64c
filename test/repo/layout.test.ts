import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..', '..');

/** The folder list of the README's "Layout" section: every `src/NAME/` (or `guest/`…) it names in a list item. */
function layoutFolders(): string[] {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = /^## Layout\n([\s\S]*?)(?=^## )/m.exec(readme)?.[1];
  if (section === undefined) throw new Error('README.md has no "## Layout" section');
  return [...section.matchAll(/^\s*[-|]\s*`([a-z][a-z0-9-]*(?:\/[a-z][a-z0-9-]*)*\/)`/gm)].map((m) => m[1]!);
}

function dirsUnder(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true })
    .filter((e) => e.isDirectory() && e.name !== 'dist' && e.name !== 'node_modules' && e.name !== 'bin')
    .map((e) => `${dir}/${e.name}/`);
}

describe('README Layout', () => {
  it('names every folder of src/ and no folder that does not exist', () => {
    const listed = layoutFolders().filter((f) => f.startsWith('src/') && f.split('/').length === 3);
    expect(listed.sort()).toEqual(dirsUnder('src').sort());
  });

  it('names the top-level parts (guest, enclave, test, bench, scripts, docs)', () => {
    const listed = layoutFolders();
    for (const part of ['guest/', 'enclave/', 'test/', 'bench/', 'scripts/', 'docs/']) expect(listed).toContain(part);
  });

  it('keeps only the package entry points at the top of src/', () => {
    const files = readdirSync(join(ROOT, 'src'), { withFileTypes: true }).filter((e) => e.isFile()).map((e) => e.name);
    expect(files.sort()).toEqual(['errors.ts', 'index.ts', 'log.ts']);
  });
});
