import { createHash } from 'node:crypto';
import type { ReportData } from './model.ts';
import { PAGE_SCRIPT } from './page/script.ts';
import { PAGE_STYLE } from './page/style.ts';

/**
 * JSON text that cannot end its `<script>` element (`<` and the JS line separators escaped): the page data whole,
 * or each piece of it streamed alike, since every character escaped is one on its own.
 */
export function scriptSafe(json: string): string {
  return json.replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
}

/** Only this page's own script may run: its hash is pinned, so markup slipped in anywhere would not execute. */
const SCRIPT_HASH = `sha256-${createHash('sha256').update(PAGE_SCRIPT).digest('base64')}`;

/** The Content-Security-Policy of the page (also sent as a header by the admin API). */
export const PAGE_CSP = `default-src 'none'; script-src '${SCRIPT_HASH}'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'`;

const BODY = `<header><h1>fetch-oracle</h1><span id="mode"></span><span class="muted">netlock</span><span id="root" class="mono"></span>
<span class="muted">keys</span><span id="keys" class="mono"></span><span id="updated" class="muted"></span></header>
<main>
<section id="misses" class="misses" hidden></section>
<section><h2>Totals</h2><div id="totals" class="cards"></div></section>
<section><h2>Timeline</h2><canvas id="timeline"></canvas><div id="timeline-note" class="muted"></div></section>
<section><h2>Hosts</h2><div id="hosts-note" class="muted"></div>
<table class="hosts"><colgroup><col style="width:40%"><col style="width:10%"><col style="width:12%"><col></colgroup>
<thead><tr><th>host</th><th>requests</th><th>bytes</th><th>size</th></tr></thead><tbody id="hosts-body"></tbody></table></section>
<section><h2>Requests</h2>
<div class="controls"><span id="views"></span><input id="q" type="search" placeholder="filter by URL or content type" aria-label="filter">
<span id="kinds"></span></div>
<div class="controls"><button id="prev" class="f">&larr; prev</button><span id="page-info"></span><button id="next" class="f">next &rarr;</button>
<span id="row-count" class="muted"></span></div>
<table><colgroup><col style="width:4.5em"><col style="width:32%"><col style="width:4em"><col style="width:8em"><col style="width:11em"><col style="width:6.5em"><col style="width:10em"><col></colgroup>
<thead><tr><th data-sort="m">method</th><th data-sort="u">URL</th><th data-sort="s">status</th><th data-sort="z">size</th><th data-sort="c">type</th><th data-sort="k">answer</th><th data-sort="t">when</th><th>note</th></tr></thead>
<tbody id="rows"></tbody></table></section>
</main>`;

/** The whole page in one file: CSS, script and data inline, nothing fetched to open it. */
export function renderReportHtml(data: ReportData): string {
  return [...reportHtmlPieces(data.netlock?.root, [JSON.stringify(data)])].join('');
}

/**
 * The report page around its data given as JSON text in pieces (`liveReportJson`), each escaped as it
 * passes: the live page of a large run is written as its rows are, never held whole.
 */
export function* reportHtmlPieces(root: string | undefined, json: Iterable<string>): Generator<string> {
  yield reportHtmlHead(root);
  for (const piece of json) yield scriptSafe(piece);
  yield REPORT_HTML_TAIL;
}

/** `reportHtmlPieces` for JSON pieces that come as they are read (`fileReportJson`). */
export async function* reportHtmlPiecesAsync(root: string | undefined, json: AsyncIterable<string>): AsyncGenerator<string> {
  yield reportHtmlHead(root);
  for await (const piece of json) yield scriptSafe(piece);
  yield REPORT_HTML_TAIL;
}

/** The page up to its data. */
function reportHtmlHead(root: string | undefined): string {
  const title = root === undefined ? 'fetch-oracle report' : `fetch-oracle report ${root}`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${PAGE_CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${PAGE_STYLE}</style>
<script type="application/json" id="fo-data">`;
}

/** The page after its data. */
const REPORT_HTML_TAIL = `</script>
</head><body>
${BODY}
<script>${PAGE_SCRIPT}</script>
</body></html>
`;

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
