import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { join } from 'node:path';
import type { Origin } from './origin.ts';
import { run } from './run.ts';

/**
 * Registry-like routes on a test origin for real package clients: a cargo sparse registry, a Go module
 * proxy (GOPROXY protocol), a PEP 503 simple index and a git smart-HTTP server (git http-backend as CGI).
 * Every artefact is built in the test with fixed timestamps.
 */

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

async function must(cmd: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const r = await run(cmd, args, options);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.code}): ${r.stderr}${r.stdout}`);
  return r.stdout;
}

function sendBytes(res: ServerResponse, bytes: Uint8Array, type: string): void {
  res.writeHead(200, { 'content-type': type, 'content-length': String(bytes.byteLength) });
  res.end(bytes);
}

/** Index path of a crate in a cargo registry index (`1/a`, `2/ab`, `3/a/abc`, `ab/cd/abcd…`). */
export function cargoIndexPath(name: string): string {
  const n = name.toLowerCase();
  if (n.length <= 2) return `${n.length}/${n}`;
  if (n.length === 3) return `3/${n[0]!}/${n}`;
  return `${n.slice(0, 2)}/${n.slice(2, 4)}/${n}`;
}

/**
 * A cargo sparse registry under `${baseUrl}/cargo/` for one crate (a library with no dependencies):
 * `index/config.json` (`dl`), the crate's index file, and the `.crate` tarball at `dl/NAME/VERSION/download`.
 * Returns the `sparse+…` index URL and the crate's bytes.
 */
export async function serveCargoCrate(origin: Origin, workDir: string, crate: { name: string; version: string }, baseUrl = origin.url): Promise<{ indexUrl: string; crate: Buffer }> {
  const top = `${crate.name}-${crate.version}`;
  const dir = join(workDir, 'crate-src', top);
  await mkdir(join(dir, 'src'), { recursive: true });
  await writeFile(join(dir, 'Cargo.toml'), `[package]\nname = "${crate.name}"\nversion = "${crate.version}"\nedition = "2021"\ndescription = "fetch-oracle run test crate"\nlicense = "MIT"\n`);
  await writeFile(join(dir, 'src', 'lib.rs'), `pub fn greeting() -> &'static str {\n    "${crate.name} ${crate.version}"\n}\n`);
  const file = join(workDir, `${top}.crate`);
  await must('tar', ['--sort=name', '--mtime=@0', '--owner=0', '--group=0', '--numeric-owner', '-czf', file, '-C', join(workDir, 'crate-src'), top]);
  const bytes = await readFile(file);
  const line = { name: crate.name, vers: crate.version, deps: [], cksum: sha256(bytes), features: {}, yanked: false };
  origin.route('/cargo/index/config.json', (_q, r) => sendBytes(r, Buffer.from(JSON.stringify({ dl: `${baseUrl}/cargo/dl` })), 'application/json'));
  origin.route(`/cargo/index/${cargoIndexPath(crate.name)}`, (_q, r) => sendBytes(r, Buffer.from(`${JSON.stringify(line)}\n`), 'text/plain'));
  origin.route(`/cargo/dl/${crate.name}/${crate.version}/download`, (_q, r) => sendBytes(r, bytes, 'application/x-tar'));
  return { indexUrl: `sparse+${baseUrl}/cargo/index/`, crate: bytes };
}

/** Writes a zip of `files` with fixed timestamps (python3's zipfile: no zip tool needed). */
async function writeZip(python: string, out: string, files: Record<string, string>): Promise<void> {
  const script = `
import json, sys, zipfile
out, files = sys.argv[1], json.loads(sys.argv[2])
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for name in sorted(files):
        info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, files[name])
`;
  await must(python, ['-c', script, out, JSON.stringify(files)]);
}

/**
 * A Go module proxy (the GOPROXY protocol) at `${origin}/` for one module version: `@v/list`, `.info`,
 * `.mod` and the module `.zip` (paths prefixed `MODULE@VERSION/`, as `go mod download` checks).
 */
export async function serveGoModule(origin: Origin, workDir: string, python: string, mod: { path: string; version: string }): Promise<{ zip: Buffer; goSum: string }> {
  const pkg = mod.path.split('/').pop()!;
  const goMod = `module ${mod.path}\n\ngo 1.21\n`;
  const source = `// Package ${pkg} is a fetch-oracle run test module.\npackage ${pkg}\n\n// Greeting names the module version.\nfunc Greeting() string { return "${mod.path} ${mod.version}" }\n`;
  const prefix = `${mod.path}@${mod.version}/`;
  const zipPath = join(workDir, `${pkg}-${mod.version}.zip`);
  await mkdir(workDir, { recursive: true });
  await writeZip(python, zipPath, { [`${prefix}go.mod`]: goMod, [`${prefix}${pkg}.go`]: source });
  const zip = await readFile(zipPath);
  const base = `/${mod.path.replace(/[A-Z]/g, (c) => `!${c.toLowerCase()}`)}/@v`;
  origin.route(`${base}/list`, (_q, r) => sendBytes(r, Buffer.from(`${mod.version}\n`), 'text/plain; charset=utf-8'));
  origin.route(`${base}/${mod.version}.info`, (_q, r) => sendBytes(r, Buffer.from(JSON.stringify({ Version: mod.version, Time: '2024-01-01T00:00:00Z' })), 'application/json'));
  origin.route(`${base}/${mod.version}.mod`, (_q, r) => sendBytes(r, Buffer.from(goMod), 'text/plain; charset=utf-8'));
  origin.route(`${base}/${mod.version}.zip`, (_q, r) => sendBytes(r, zip, 'application/zip'));
  // go.sum's two lines: dirhash "h1" of the module's files and of its go.mod (golang.org/x/mod/sumdb/dirhash).
  const h1 = (files: Array<[string, string]>): string =>
    `h1:${createHash('sha256')
      .update(files.sort(([a], [b]) => (a < b ? -1 : 1)).map(([name, text]) => `${sha256(Buffer.from(text))}  ${name}\n`).join(''))
      .digest('base64')}`;
  const goSum = `${mod.path} ${mod.version} ${h1([[`${prefix}go.mod`, goMod], [`${prefix}${pkg}.go`, source]])}\n${mod.path} ${mod.version}/go.mod ${h1([['go.mod', goMod]])}\n`;
  return { zip, goSum };
}

/** Builds a minimal, valid wheel with python3's zipfile (fixed timestamps, RECORD hashes). */
export async function buildWheel(python: string, out: string, pkg: string, version: string): Promise<Buffer> {
  const script = `
import base64, hashlib, sys, zipfile
out, pkg, version = sys.argv[1:4]
dist = f"{pkg}-{version}.dist-info"
files = {
    f"{pkg}/__init__.py": f"VERSION = {version!r}\\n".encode(),
    f"{dist}/METADATA": f"Metadata-Version: 2.1\\nName: {pkg}\\nVersion: {version}\\nSummary: fetch-oracle run test\\n".encode(),
    f"{dist}/WHEEL": b"Wheel-Version: 1.0\\nGenerator: fetch-oracle-test\\nRoot-Is-Purelib: true\\nTag: py3-none-any\\n",
}
def digest(b):
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(b).digest()).rstrip(b"=").decode()
files[f"{dist}/RECORD"] = ("".join(f"{n},{digest(b)},{len(b)}\\n" for n, b in files.items()) + f"{dist}/RECORD,,\\n").encode()
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for name, data in files.items():
        info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        z.writestr(info, data)
`;
  await must(python, ['-c', script, out, pkg, version]);
  return readFile(out);
}

/** A PEP 503 simple index at `${baseUrl}/simple/` listing one wheel (with its sha256), served at `/files/`. */
export function serveSimpleIndex(origin: Origin, pkg: string, fileName: string, wheel: Buffer, baseUrl = origin.url): void {
  origin.route(`/simple/${pkg}/`, (_q, r) => {
    const html = `<!DOCTYPE html>\n<html><body>\n<a href="${baseUrl}/files/${fileName}#sha256=${sha256(wheel)}">${fileName}</a><br/>\n</body></html>\n`;
    sendBytes(r, Buffer.from(html), 'text/html; charset=utf-8');
  });
  origin.route(`/files/${fileName}`, (_q, r) => sendBytes(r, wheel, 'application/octet-stream'));
}

/** Environment for git commands that must not read the machine's or the user's configuration. */
export function isolatedGitEnv(home: string): NodeJS.ProcessEnv {
  return {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    HOME: home,
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    GIT_TERMINAL_PROMPT: '0',
    GIT_AUTHOR_NAME: 'fetch-oracle test',
    GIT_AUTHOR_EMAIL: 'test@fetch-oracle.invalid',
    GIT_AUTHOR_DATE: '2024-01-01T00:00:00Z',
    GIT_COMMITTER_NAME: 'fetch-oracle test',
    GIT_COMMITTER_EMAIL: 'test@fetch-oracle.invalid',
    GIT_COMMITTER_DATE: '2024-01-01T00:00:00Z',
  };
}

/**
 * Runs `git http-backend` as a CGI for one request: the request's method, path, query, content type and
 * encoding and Git-Protocol header become CGI variables, the body goes to its stdin, and its CGI answer
 * (`Status:` and headers, blank line, body) becomes the response.
 */
function gitHttpBackend(projectRoot: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://origin.invalid');
  const header = (name: string): string => {
    const v = req.headers[name];
    return Array.isArray(v) ? v.join(', ') : (v ?? '');
  };
  const env: NodeJS.ProcessEnv = {
    PATH: process.env['PATH'] ?? '/usr/bin:/bin',
    GIT_PROJECT_ROOT: projectRoot,
    GIT_HTTP_EXPORT_ALL: '1',
    GIT_CONFIG_NOSYSTEM: '1',
    GIT_CONFIG_GLOBAL: '/dev/null',
    REQUEST_METHOD: req.method ?? 'GET',
    PATH_INFO: decodeURIComponent(url.pathname),
    QUERY_STRING: url.search.slice(1),
    CONTENT_TYPE: header('content-type'),
    REMOTE_ADDR: '127.0.0.1',
    REMOTE_USER: '',
    GIT_PROTOCOL: header('git-protocol'),
    HTTP_CONTENT_ENCODING: header('content-encoding'),
    ...(req.headers['content-length'] === undefined ? {} : { CONTENT_LENGTH: header('content-length') }),
  };
  return new Promise((resolve, reject) => {
    const child = spawn('git', ['http-backend'], { env, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.stdin.on('error', () => {});
    req.pipe(child.stdin);
    child.on('error', reject);
    child.on('close', (code) => {
      const all = Buffer.concat(out);
      const split = all.indexOf('\r\n\r\n') >= 0 ? all.indexOf('\r\n\r\n') : all.indexOf('\n\n');
      if (split < 0) {
        res.writeHead(500, { 'content-type': 'text/plain' });
        res.end(`git http-backend exited ${code}: ${err}`);
        resolve();
        return;
      }
      const sepLength = all[split] === 0x0d ? 4 : 2;
      let status = 200;
      const headers: Record<string, string> = {};
      for (const line of all.subarray(0, split).toString('latin1').split(/\r?\n/)) {
        const colon = line.indexOf(':');
        if (colon < 0) continue;
        const name = line.slice(0, colon).trim();
        const value = line.slice(colon + 1).trim();
        if (name.toLowerCase() === 'status') status = Number.parseInt(value, 10);
        else headers[name] = value;
      }
      const body = all.subarray(split + sepLength);
      headers['content-length'] = String(body.byteLength);
      res.writeHead(status, headers);
      res.end(body);
      resolve();
    });
  });
}

/**
 * A git repository `NAME.git` (one commit with `files`, fixed author/committer dates) served over smart HTTP
 * at `${origin}/NAME.git` by `git http-backend`. Returns the commit id.
 */
export async function serveGitRepo(origin: Origin, workDir: string, name: string, files: Record<string, string>): Promise<{ commit: string }> {
  const env = isolatedGitEnv(workDir);
  const src = join(workDir, `${name}-src`);
  await mkdir(src, { recursive: true });
  await must('git', ['init', '-q', '-b', 'main', src], { env });
  for (const [path, content] of Object.entries(files)) {
    await mkdir(join(src, path, '..'), { recursive: true });
    await writeFile(join(src, path), content);
  }
  await must('git', ['add', '-A'], { cwd: src, env });
  await must('git', ['commit', '-q', '-m', `${name}: fetch-oracle run test`], { cwd: src, env });
  const commit = (await must('git', ['rev-parse', 'HEAD'], { cwd: src, env })).trim();
  const projectRoot = join(workDir, 'git-root');
  await mkdir(projectRoot, { recursive: true });
  await must('git', ['clone', '-q', '--bare', src, join(projectRoot, `${name}.git`)], { env });
  for (const path of [`/${name}.git/info/refs`, `/${name}.git/git-upload-pack`, `/${name}.git/HEAD`]) {
    origin.route(path, (req, res) => gitHttpBackend(projectRoot, req, res));
  }
  return { commit };
}
