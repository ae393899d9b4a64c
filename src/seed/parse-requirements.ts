import { dirname, join } from 'node:path';
import { InvalidLockfileError } from '../errors.ts';
import { PIP_FILE_ACCEPT, PIP_INDEX_ACCEPT } from './client-requests.ts';
import { parseDigest } from './digests.ts';
import { normaliseProjectName, parseProjectPage } from './simple-index.ts';
import { isHttpUrl, logicalLines } from './text.ts';
import type { BodyDigest, EntrySource, ParseOptions, SeedEntry, SeedPlan, SeedResolver, SeedWarning } from './types.ts';

export const DEFAULT_PIP_INDEX = 'https://pypi.org/simple/';
const MAX_INCLUDE_DEPTH = 8;

interface Requirement {
  source: EntrySource;
  project: string;
  version: string;
  hashes: BodyDigest[];
}

function withSlash(url: string): string {
  return url.endsWith('/') ? url : `${url}/`;
}

/**
 * `requirements.txt` as `pip install --require-hashes -r` reads it: `name==version --hash=sha256:…` (lines
 * joined at `\`), `-i/--index-url`, `--extra-index-url`, `-r` includes, and direct `name @ URL` references.
 * Each pinned requirement becomes a resolver that fetches its project page from every index (recorded with
 * pip's Accept, as pip will ask) and seeds the files whose sha256 is one of the requirement's hashes, plus
 * their PEP 658 metadata files when the page advertises them (pip fetches those first). Read by hand: only
 * pinned lines and a few of pip's options matter, with file:line in every warning.
 */
export function parseRequirements(text: string, file: string, options: ParseOptions = {}): SeedPlan {
  const entries: SeedEntry[] = [];
  const warnings: SeedWarning[] = [];
  const requirements: Requirement[] = [];
  let index = options.pipIndex;
  const extra: string[] = [];
  const read = (content: string, name: string, depth: number): void => {
    for (const { line, text: raw } of logicalLines(content)) {
      const t = raw.replace(/(^|\s)#.*$/, '').trim();
      if (t === '') continue;
      const tokens = t.split(/\s+/);
      const head = tokens[0]!;
      const value = (flag: string): string => {
        const eq = head.indexOf('=');
        const v = eq > 0 && head.startsWith('--') ? head.slice(eq + 1) : tokens[1];
        if (v === undefined || v === '') throw new InvalidLockfileError(name, line, `${flag} needs a value`);
        return v;
      };
      if (/^(-i|--index-url)(=|$)/.test(head)) {
        if (options.pipIndex === undefined) index = withSlash(value('--index-url'));
        continue;
      }
      if (/^--extra-index-url(=|$)/.test(head)) {
        extra.push(withSlash(value('--extra-index-url')));
        continue;
      }
      if (/^(-r|--requirement)(=|$)/.test(head)) {
        const included = value('-r');
        if (depth >= MAX_INCLUDE_DEPTH || options.readInclude === undefined) throw new InvalidLockfileError(name, line, `cannot follow -r ${included}${depth >= MAX_INCLUDE_DEPTH ? ' (includes nested too deep)' : ''}`);
        const path = join(dirname(name), included);
        read(options.readInclude(path), path, depth + 1);
        continue;
      }
      if (/^(-c|--constraint|-e|--editable|-f|--find-links|--no-index|--no-binary|--only-binary|--prefer-binary|--pre|--trusted-host|--use-feature|--require-hashes)(=|$)/.test(head)) {
        if (/^(-e|--editable)/.test(head)) warnings.push({ source: { file: name, line, name: tokens.slice(1).join(' ') }, message: 'editable requirement: not seeded', strict: false });
        continue;
      }
      if (head.startsWith('-')) throw new InvalidLockfileError(name, line, `unknown option ${JSON.stringify(head)}`);
      const hashes: BodyDigest[] = [];
      const spec: string[] = [];
      for (let i = 0; i < tokens.length; i++) {
        const tok = tokens[i]!;
        if (tok.startsWith('--hash')) {
          const v = tok.includes('=') ? tok.slice(tok.indexOf('=') + 1) : tokens[++i];
          const d = v === undefined ? undefined : parseDigest(v);
          if (d === undefined) throw new InvalidLockfileError(name, line, `unreadable ${tok} ${v ?? ''} (expected --hash=sha256:HEX)`);
          hashes.push(d);
        } else if (tok.startsWith('--')) {
          // per-requirement options pip accepts (--global-option, --config-settings): nothing to fetch
        } else {
          spec.push(tok);
        }
      }
      const req = spec.join(' ').split(';')[0]!.trim();
      const direct = /^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*@\s*(\S+)$/.exec(req);
      const source = { file: name, line, name: req };
      if (direct !== null || isHttpUrl(req)) {
        const url = direct === null ? req : direct[3]!;
        if (!isHttpUrl(url)) {
          warnings.push({ source, message: `direct reference ${url.slice(0, 100)} is not an http(s) URL: not seeded`, strict: false });
          continue;
        }
        const u = new URL(url);
        const fragment = parseDigest(u.hash.replace(/^#/, ''));
        u.hash = '';
        const expect = hashes.length > 0 ? hashes : fragment === undefined ? [] : [fragment];
        if (expect.length === 0) warnings.push({ source, message: 'no --hash: recorded as fetched, unchecked', strict: true });
        entries.push({ source, url: u.toString(), accept: PIP_FILE_ACCEPT, expect, ...(expect.length === 0 ? { missingDigest: true } : {}) });
        continue;
      }
      const pinned = /^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*===?\s*([^\s,;]+)$/.exec(req);
      if (pinned === null) {
        if (!/^[A-Za-z0-9][A-Za-z0-9._-]*(\[[^\]]*\])?\s*([<>=!~].*)?$/.test(req)) throw new InvalidLockfileError(name, line, `unreadable requirement ${JSON.stringify(req.slice(0, 100))}`);
        warnings.push({ source, message: 'not pinned with ==: pip would choose a version, which seeding cannot know', strict: true });
        continue;
      }
      if (hashes.length === 0) warnings.push({ source, message: 'no --hash: its files are recorded as fetched, unchecked', strict: true });
      requirements.push({ source, project: pinned[1]!, version: pinned[3]!, hashes });
    }
  };
  read(text, file, 0);
  const indexes = [index ?? DEFAULT_PIP_INDEX, ...extra];
  return { entries, resolvers: requirements.map((r) => pipResolver(r, indexes)), warnings };
}

/** Whether a distribution file name is of `project` at `version` (wheel `name-ver-…`, sdist `name-ver.tar.gz`). */
function fileIsVersion(filename: string, project: string, version: string): boolean {
  const escape = (t: string): string => t.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const name = project.split(/[-_.]+/).map(escape).join('[-_.]+');
  return new RegExp(`^${name}-${escape(version)}(-|\\.tar|\\.zip|\\.whl)`, 'i').test(filename);
}

function pipResolver(req: Requirement, indexes: readonly string[]): SeedResolver {
  return {
    source: req.source,
    label: `${req.project}==${req.version}`,
    async resolve(ctx) {
      const entries: SeedEntry[] = [];
      const warnings: SeedWarning[] = [];
      const wanted = new Set(req.hashes.filter((h) => h.algorithm === 'sha256').map((h) => h.hex));
      const found = new Set<string>();
      for (const idx of indexes) {
        const pageUrl = `${idx}${normaliseProjectName(req.project)}/`;
        // pip asks every index; a 404 from one of several is what pip sees too, and is recorded as such.
        const page = await ctx.fetchDocument({ source: req.source, url: pageUrl, accept: PIP_INDEX_ACCEPT, expect: [], ...(indexes.length > 1 ? { acceptStatus: [404] } : {}) });
        if (page.status !== 200) continue;
        let files;
        try {
          files = parseProjectPage(page.text, page.contentType, pageUrl);
        } catch (err) {
          throw new InvalidLockfileError(req.source.file, req.source.line, `${req.project}: unreadable index page ${pageUrl}: ${(err as Error).message}`);
        }
        for (const f of files) {
          const matches = f.sha256 !== undefined ? wanted.has(f.sha256) : fileIsVersion(f.filename, req.project, req.version);
          if (!matches) continue;
          if (f.sha256 !== undefined) found.add(f.sha256);
          const source = { ...req.source, name: `${req.project}==${req.version} ${f.filename}` };
          entries.push({ source, url: f.url, accept: PIP_FILE_ACCEPT, expect: req.hashes.length === 0 ? (f.sha256 === undefined ? [] : [{ algorithm: 'sha256', hex: f.sha256 }]) : req.hashes });
          if (f.metadata !== undefined) {
            entries.push({ source: { ...source, name: `${source.name}.metadata` }, url: `${f.url}.metadata`, accept: PIP_FILE_ACCEPT, expect: f.metadata.sha256 === undefined ? [] : [{ algorithm: 'sha256', hex: f.metadata.sha256 }] });
          }
        }
      }
      if (entries.length === 0) throw new InvalidLockfileError(req.source.file, req.source.line, `${req.project}==${req.version}: no file on ${indexes.join(', ')} matches its hashes`);
      for (const h of wanted) if (!found.has(h) && entries.some((e) => e.expect.length > 0)) warnings.push({ source: req.source, message: `--hash=sha256:${h} matches no file the index lists`, strict: false });
      return { entries, warnings };
    },
  };
}
