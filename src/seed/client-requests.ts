/**
 * The Accept header each client sends for what `seed` records: the request key holds `accept` (design §5),
 * so a seeded record answers the client only if this matches what it will send. Each value that a test
 * replays a real client against is marked so; the others follow the client's source.
 */

/** npm (pacote) tarball GETs: `accept: *\/*` (environment.md §7; `npm ci` replayed in test/seed). */
export const NPM_TARBALL_ACCEPT = '*/*';
/** yarn v1 and pnpm tarball GETs: no client test here; both send `*\/*` or nothing, which key the same. */
export const YARN_TARBALL_ACCEPT = '*/*';
export const PNPM_TARBALL_ACCEPT = '*/*';
/**
 * pip's index page request (pip/_internal/index/collector.py, pip ≥ 22.3, PEP 691 content negotiation);
 * `pip install --require-hashes` replayed in test/seed.
 */
export const PIP_INDEX_ACCEPT = 'application/vnd.pypi.simple.v1+json, application/vnd.pypi.simple.v1+html; q=0.1, text/html; q=0.01';
/** pip's file downloads go through requests, whose default Accept is `*\/*`. uv's downloads key the same. */
export const PIP_FILE_ACCEPT = '*/*';
/** cargo's sparse-index requests (config.json and index files) send `accept: text/plain`; `cargo fetch` replayed in test/seed. */
export const CARGO_INDEX_ACCEPT = 'text/plain';
/** cargo's crate downloads (libcurl, no Accept set: curl sends `*\/*`). */
export const CARGO_DOWNLOAD_ACCEPT = '*/*';
/** The go command's GOPROXY requests set no Accept (`*\/*` in the key); `go mod download` replayed in test/seed. */
export const GO_ACCEPT = '*/*';
/** Plain URL lists, SHA256SUMS and Dockerfile ADD: curl, wget and BuildKit send `*\/*`. */
export const GENERIC_ACCEPT = '*/*';
