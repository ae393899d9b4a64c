import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { InvalidLockfileError } from '../../src/errors.ts';
import { parseDigest, parseSri } from '../../src/seed/digests.ts';
import { goModHash, hash1 } from '../../src/seed/go-dirhash.ts';
import { cargoIndexPath, crateDownloadUrl, parseCargoLock } from '../../src/seed/parse-cargo-lock.ts';
import { parseDockerfile } from '../../src/seed/parse-dockerfile.ts';
import { parseGoSum } from '../../src/seed/parse-go-sum.ts';
import { detectKind, parseInput } from '../../src/seed/parse-input.ts';
import { npmTarballUrl, parsePnpmLock, pnpmNameVersion } from '../../src/seed/parse-pnpm-lock.ts';
import { parseRequirements } from '../../src/seed/parse-requirements.ts';
import { parseUvLock } from '../../src/seed/parse-uv-lock.ts';
import { parseYarnLock } from '../../src/seed/parse-yarn-lock.ts';
import { parseProjectPage } from '../../src/seed/simple-index.ts';

/** The lockfile readers: what each yields, and file:line on bad input. */

const hex64 = 'ab'.repeat(32);
const sri = `sha512-${Buffer.alloc(64, 7).toString('base64')}`;

function errorOf(fn: () => unknown): InvalidLockfileError {
  try {
    fn();
  } catch (err) {
    if (err instanceof InvalidLockfileError) return err;
    throw err;
  }
  throw new Error('expected InvalidLockfileError');
}

describe('digests', () => {
  it('reads SRI, sha256:HEX, sha256=HEX, bare hex; skips unknown algorithms', () => {
    expect(parseDigest(`sha256:${hex64}`)).toEqual({ algorithm: 'sha256', hex: hex64 });
    expect(parseDigest(`sha256=${hex64.toUpperCase()}`)).toEqual({ algorithm: 'sha256', hex: hex64 });
    expect(parseDigest(hex64)).toEqual({ algorithm: 'sha256', hex: hex64 });
    expect(parseDigest(sri)).toEqual({ algorithm: 'sha512', hex: '07'.repeat(64) });
    expect(parseDigest('md5-abc')).toBeUndefined();
    expect(parseSri(`${sri} sha1-${Buffer.alloc(20, 1).toString('base64')} md5-xyz`).map((d) => d.algorithm)).toEqual(['sha512', 'sha1']);
  });
});

describe('go dirhash', () => {
  it('hashes sorted "sha256  name" lines (golang.org/x/mod/sumdb/dirhash Hash1)', () => {
    // Hash1 of one file "go.mod" whose content is empty, computed independently of hash1's sort and format.
    const emptySha = createHash('sha256').update('').digest('hex');
    const expected = `h1:${createHash('sha256').update(`${emptySha}  go.mod\n`).digest('base64')}`;
    expect(goModHash(new Uint8Array())).toBe(expected);
    expect(hash1([{ name: 'b', sha256hex: '2' }, { name: 'a', sha256hex: '1' }])).toBe(`h1:${createHash('sha256').update('1  a\n2  b\n').digest('base64')}`);
  });
});

describe('yarn.lock v1', () => {
  it('seeds resolved URLs with integrity, falls back to the sha1 fragment, refuses berry', () => {
    const text = `# yarn lockfile v1\n\n"@s/a@^1.0.0", "@s/a@^1.1":\n  version "1.2.0"\n  resolved "https://r.example/@s/a/-/a-1.2.0.tgz#${'cd'.repeat(20)}"\n  integrity ${sri}\n  dependencies:\n    b "^2"\n\nb@^2:\n  version "2.0.0"\n  resolved "https://r.example/b/-/b-2.0.0.tgz#${'ef'.repeat(20)}"\n\nc@^3:\n  version "3.0.0"\n`;
    const plan = parseYarnLock(text, 'yarn.lock');
    expect([...plan.entries].map((e) => [e.url, e.expect[0]?.algorithm, e.source.line, e.source.name])).toEqual([
      ['https://r.example/@s/a/-/a-1.2.0.tgz', 'sha512', 3, '@s/a (1.2.0)'],
      ['https://r.example/b/-/b-2.0.0.tgz', 'sha1', 10, 'b (2.0.0)'],
    ]);
    expect(plan.warnings.map((w) => `${w.source.line} ${w.message}`)).toEqual(['14 no "resolved" URL: not seeded']);
    expect(errorOf(() => parseYarnLock('__metadata:\n  version: 6\n', 'yarn.lock')).message).toContain('yarn.lock:1: a yarn berry');
  });
});

describe('pnpm-lock.yaml', () => {
  it('reads v6 and v9 keys, tarball URLs and the registry URL pnpm derives', () => {
    expect(pnpmNameVersion('/@s/a@1.0.0(react@18.0.0)')).toEqual({ name: '@s/a', version: '1.0.0' });
    expect(pnpmNameVersion('b@2.0.0')).toEqual({ name: 'b', version: '2.0.0' });
    expect(pnpmNameVersion('/c/3.0.0_peer@1')).toEqual({ name: 'c', version: '3.0.0' });
    expect(npmTarballUrl('https://r.example/', '@s/a', '1.0.0')).toBe('https://r.example/@s/a/-/a-1.0.0.tgz');
    const text = `lockfileVersion: '9.0'\n\npackages:\n\n  '@s/a@1.0.0':\n    resolution: {integrity: ${sri}}\n\n  b@2.0.0:\n    resolution: {integrity: ${sri}, tarball: https://cdn.example/b.tgz}\n\n  g@1.0.0:\n    resolution: {type: git, repo: https://git.example/g, commit: abc}\n`;
    const plan = parsePnpmLock(text, 'pnpm-lock.yaml', 'https://r.example');
    expect([...plan.entries].map((e) => `${e.source.line} ${e.url}`)).toEqual(['5 https://r.example/@s/a/-/a-1.0.0.tgz', '8 https://cdn.example/b.tgz']);
    expect(plan.warnings.map((w) => w.source.line)).toEqual([11]);
    expect(errorOf(() => parsePnpmLock('lockfileVersion: 9\npackages:\n  a: [1,\n', 'pnpm-lock.yaml')).message).toMatch(/^pnpm-lock\.yaml:\d+: not valid YAML/);
  });
});

describe('requirements.txt', () => {
  it('reads --index-url, continuation lines, hashes, direct URLs, and warns about unpinned requirements', () => {
    const text = `-i https://idx.example/simple\nfoo==1.0 \\\n    --hash=sha256:${hex64}\nbar @ https://files.example/bar-2.0.tar.gz#sha256=${hex64}\nbaz>=3\n`;
    const plan = parseRequirements(text, 'requirements.txt');
    expect(plan.resolvers.map((r) => `${r.source.line} ${r.label}`)).toEqual(['2 foo==1.0']);
    expect([...plan.entries].map((e) => `${e.source.line} ${e.url} ${e.expect[0]?.algorithm}`)).toEqual(['4 https://files.example/bar-2.0.tar.gz sha256']);
    expect(plan.warnings.map((w) => `${w.source.line} ${w.message}`)).toEqual(['5 not pinned with ==: pip would choose a version, which seeding cannot know']);
    expect(errorOf(() => parseRequirements('foo==1 --hash=md5:abc\n', 'r.txt')).message).toContain('r.txt:1: unreadable --hash');
  });

  it('reads PEP 691 JSON and PEP 503 HTML project pages with hashes and PEP 658 metadata', () => {
    const json = JSON.stringify({ files: [{ filename: 'foo-1.0-py3-none-any.whl', url: '../../files/foo-1.0-py3-none-any.whl', hashes: { sha256: hex64 }, 'core-metadata': { sha256: hex64 } }] });
    expect(parseProjectPage(json, 'application/vnd.pypi.simple.v1+json', 'https://i.example/simple/foo/')).toEqual([
      { filename: 'foo-1.0-py3-none-any.whl', url: 'https://i.example/files/foo-1.0-py3-none-any.whl', sha256: hex64, metadata: { sha256: hex64 } },
    ]);
    const html = `<a href="https://f.example/foo-1.0.tar.gz#sha256=${hex64}" data-requires-python="&gt;=3.8">foo-1.0.tar.gz</a>`;
    expect(parseProjectPage(html, 'text/html', 'https://i.example/simple/foo/')).toEqual([{ filename: 'foo-1.0.tar.gz', url: 'https://f.example/foo-1.0.tar.gz', sha256: hex64, metadata: undefined }]);
  });
});

describe('uv.lock', () => {
  it('seeds sdists and wheels with their hashes; skips local sources; warns about git', () => {
    const text = `version = 1\n\n[[package]]\nname = "app"\nversion = "0.1.0"\nsource = { editable = "." }\n\n[[package]]\nname = "foo"\nversion = "1.0"\nsource = { registry = "https://pypi.org/simple" }\nsdist = { url = "https://f.example/foo-1.0.tar.gz", hash = "sha256:${hex64}", size = 10 }\nwheels = [\n    { url = "https://f.example/foo-1.0-py3-none-any.whl", hash = "sha256:${hex64}", size = 9 },\n]\n\n[[package]]\nname = "g"\nversion = "2"\nsource = { git = "https://git.example/g?rev=1#abc" }\n`;
    const plan = parseUvLock(text, 'uv.lock');
    expect([...plan.entries].map((e) => `${e.source.line} ${e.url}`)).toEqual(['9 https://f.example/foo-1.0.tar.gz', '9 https://f.example/foo-1.0-py3-none-any.whl']);
    expect(plan.warnings.map((w) => w.source.line)).toEqual([18]);
    expect(errorOf(() => parseUvLock('version = 1\n[[package]\n', 'uv.lock')).message).toMatch(/^uv\.lock:2: not valid TOML/);
  });
});

describe('Cargo.lock', () => {
  it('groups crates per registry, maps crates.io to its sparse index, fills dl templates', () => {
    expect(cargoIndexPath('ab')).toBe('2/ab');
    expect(cargoIndexPath('Serde')).toBe('se/rd/serde');
    expect(crateDownloadUrl('https://static.crates.io/crates', 'serde', '1.0.0', 'x')).toBe('https://static.crates.io/crates/serde/1.0.0/download');
    expect(crateDownloadUrl('https://d.example/{prefix}/{crate}-{version}.crate?c={sha256-checksum}', 'Abcd', '1.0.0', 'ff')).toBe('https://d.example/Ab/cd/Abcd-1.0.0.crate?c=ff');
    const text = `version = 4\n\n[[package]]\nname = "app"\nversion = "0.1.0"\n\n[[package]]\nname = "serde"\nversion = "1.0.0"\nsource = "registry+https://github.com/rust-lang/crates.io-index"\nchecksum = "${hex64}"\n\n[[package]]\nname = "own"\nversion = "0.2.0"\nsource = "sparse+https://reg.example/index/"\nchecksum = "${hex64}"\n\n[[package]]\nname = "g"\nversion = "0.3.0"\nsource = "git+https://git.example/g#abc"\n`;
    const plan = parseCargoLock(text, 'Cargo.lock');
    expect(plan.resolvers.map((r) => r.label)).toEqual(['cargo registry https://index.crates.io/', 'cargo registry https://reg.example/index/']);
    expect(plan.warnings.map((w) => `${w.source.line} ${w.source.name}`)).toEqual(['20 g 0.3.0']);
  });
});

describe('go.sum', () => {
  it('seeds .zip, .info and .mod under the module proxy, escaping upper case', () => {
    const h = `h1:${'A'.repeat(43)}=`;
    const plan = parseGoSum(`github.com/Foo/bar v1.0.0 ${h}\ngithub.com/Foo/bar v1.0.0/go.mod ${h}\n`, 'go.sum', 'https://gp.example/');
    expect([...plan.entries].map((e) => `${e.source.line} ${e.url} ${e.expect.map((x) => (x.algorithm === 'go-h1' ? x.over : '')).join()}`)).toEqual([
      '1 https://gp.example/github.com/%21foo/bar/@v/v1.0.0.info ',
      '1 https://gp.example/github.com/%21foo/bar/@v/v1.0.0.zip zip',
      '2 https://gp.example/github.com/%21foo/bar/@v/v1.0.0.mod mod',
    ]);
    expect(errorOf(() => parseGoSum(`m v1 sha256:abc\n`, 'go.sum')).message).toContain('go.sum:1: m v1: unsupported hash');
  });
});

describe('Dockerfile ADD', () => {
  it('seeds http(s) ADD sources with --checksum, substitutes ARG defaults, warns about unchecked and git sources', () => {
    const text = `FROM scratch\nARG V=1.2\nADD --checksum=sha256:${hex64} https://d.example/tool-\${V}.tar.gz /opt/\nADD --chown=1:1 \\\n    https://d.example/plain.txt /etc/\nADD ["https://d.example/json.bin", "/x"]\nADD https://github.com/o/r.git#main /src\nADD local.txt /\n`;
    const plan = parseDockerfile(text, 'Dockerfile');
    expect([...plan.entries].map((e) => `${e.source.line} ${e.url} ${e.expect.length}`)).toEqual(['3 https://d.example/tool-1.2.tar.gz 1', '4 https://d.example/plain.txt 0', '6 https://d.example/json.bin 0']);
    expect(plan.warnings.map((w) => w.source.line)).toEqual([4, 6, 7]);
  });
});

describe('detectKind', () => {
  it('tells inputs by name, then by content', () => {
    expect(detectKind('/x/package-lock.json', '')).toBe('npm');
    expect(detectKind('/x/Cargo.lock', '')).toBe('cargo');
    expect(detectKind('/x/SHA256SUMS', '')).toBe('sha256sums');
    expect(detectKind('/x/Containerfile', '')).toBe('dockerfile');
    expect(detectKind('/x/requirements-dev.txt', '')).toBe('requirements');
    expect(detectKind('/x/list', 'https://a/b\n# c\nhttp://d/e sha256=00\n')).toBe('urls');
    expect(detectKind('/x/sums', `${hex64}  a.tgz\n`)).toBe('sha256sums');
    expect(detectKind('/x/locked', `m v1.0.0 h1:${'A'.repeat(43)}=\n`)).toBe('gosum');
    expect(detectKind('/x/whatever', 'hello\n')).toBeUndefined();
    expect(errorOf(() => parseInput('/x/whatever', 'hello\n', undefined)).message).toContain('cannot tell what kind of input');
  });
});
