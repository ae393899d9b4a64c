import { parseDigest } from './digests.ts';

/** One distribution file a PEP 503 (HTML) or PEP 691 (JSON) project page lists. */
export interface IndexFile {
  filename: string;
  /** Absolute URL without the fragment. */
  url: string;
  sha256: string | undefined;
  /** PEP 658/714 metadata file (`URL.metadata`) when the page advertises it, with its sha256 if given. */
  metadata: { sha256: string | undefined } | undefined;
}

/** PEP 503 name normalisation: lower case, runs of `-`, `_`, `.` become one `-`. */
export function normaliseProjectName(name: string): string {
  return name.toLowerCase().replace(/[-_.]+/g, '-');
}

function decodeEntities(s: string): string {
  return s.replace(/&(amp|lt|gt|quot|#39|#x27);/g, (_m, e: string) => ({ amp: '&', lt: '<', gt: '>', quot: '"', '#39': "'", '#x27': "'" })[e] ?? _m);
}

function sha256Of(fragmentOrValue: string | undefined): string | undefined {
  if (fragmentOrValue === undefined) return undefined;
  const d = parseDigest(fragmentOrValue.replace(/^#/, ''));
  return d?.algorithm === 'sha256' ? d.hex : undefined;
}

function metadataOf(value: unknown): IndexFile['metadata'] {
  if (value === undefined || value === false || value === null) return undefined;
  if (value === true) return { sha256: undefined };
  if (typeof value === 'string') return value === 'false' ? undefined : { sha256: sha256Of(value) };
  if (typeof value === 'object') {
    const h = (value as Record<string, unknown>)['sha256'];
    return { sha256: typeof h === 'string' ? h.toLowerCase() : undefined };
  }
  return undefined;
}

/**
 * The files of a project page, as pip reads them (JSON when the server answered PEP 691, else HTML anchors).
 * The HTML is read with a regular expression, not an HTML parser: a PEP 503 page is a generated list of
 * anchors, and pip itself only collects `<a>` tags from it.
 */
export function parseProjectPage(body: string, contentType: string, pageUrl: string): IndexFile[] {
  const out: IndexFile[] = [];
  if (contentType.toLowerCase().startsWith('application/vnd.pypi.simple.v1+json')) {
    const doc = JSON.parse(body) as { files?: Array<Record<string, unknown>> };
    for (const f of doc.files ?? []) {
      if (typeof f['url'] !== 'string') continue;
      const abs = new URL(f['url'], pageUrl);
      abs.hash = '';
      const hashes = (f['hashes'] ?? {}) as Record<string, unknown>;
      out.push({
        filename: typeof f['filename'] === 'string' ? f['filename'] : decodeURIComponent(abs.pathname.split('/').pop() ?? ''),
        url: abs.toString(),
        sha256: typeof hashes['sha256'] === 'string' ? hashes['sha256'].toLowerCase() : undefined,
        metadata: metadataOf(f['core-metadata'] ?? f['data-dist-info-metadata'] ?? f['dist-info-metadata']),
      });
    }
    return out;
  }
  for (const m of body.matchAll(/<a\s([^>]*)>([^<]*)<\/a>/gi)) {
    const attrs = new Map<string, string>();
    for (const a of m[1]!.matchAll(/([\w-]+)\s*=\s*("([^"]*)"|'([^']*)'|([^\s"'>]+))/g)) attrs.set(a[1]!.toLowerCase(), decodeEntities(a[3] ?? a[4] ?? a[5] ?? ''));
    const href = attrs.get('href');
    if (href === undefined) continue;
    const abs = new URL(href, pageUrl);
    const fragment = abs.hash;
    abs.hash = '';
    out.push({
      filename: decodeURIComponent(abs.pathname.split('/').pop() ?? '') || m[2]!.trim(),
      url: abs.toString(),
      sha256: sha256Of(fragment),
      metadata: metadataOf(attrs.get('data-core-metadata') ?? attrs.get('data-dist-info-metadata')),
    });
  }
  return out;
}
