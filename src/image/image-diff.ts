import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import type { AbortOptions } from '../protocol/blocks.ts';
import { inspectImage, pushUncompressed } from './buildah.ts';
import type { BuildahStorage, ImageConfig } from './buildah.ts';
import { classifyDifferences, why } from './classify.ts';
import type { Cause } from './classify.ts';
import { scrubProfilesFor } from './scrub.ts';
import { diffTarEntries, readTarEntries, readTarSamples } from './tar-entries.ts';
import type { EntryDifference } from './tar-entries.ts';

/** How many differing files are sampled for classification, and how much of each. */
const SAMPLED_PATHS = 500;
const SAMPLE_BYTES = 64 * 1024;

/** An image in a buildah storage. */
export interface StoredImage {
  storage: BuildahStorage;
  /** Image ID (`sha256:…`) or name. */
  image: string;
}

export interface LayerDifference {
  /** 1-based position of the layer in the image (the base image's layers count too). */
  index: number;
  /** The instructions whose changes the layer holds (history `created_by`, shell prefix removed), e.g. `head -c16 /dev/urandom > /x`. */
  createdBy: string[];
  recordDiffId: string | undefined;
  replayDiffId: string | undefined;
  /** The paths the two layers differ in (empty when one image has no such layer). */
  paths: EntryDifference[];
}

export interface ImageDifference {
  recordLayers: number;
  replayLayers: number;
  /** The first layer that differs; undefined when every layer is equal (then the configurations differ). */
  layer?: LayerDifference;
  /** JSON paths of the configuration fields that differ besides the layer list (`history[3].created_by`…). */
  config: string[];
  /** `--scrub` profiles that cover differing paths (a hint, not applied by itself). */
  scrubHints: string[];
  /** The differing paths of the layer sorted into causes, most telling first (classify.ts). */
  causes: Cause[];
}

/**
 * The tar of layer `index` (0-based) of the single image in OCI layout `dir`, decompressed next to it if the
 * blob is gzip (buildah 1.28 pushes layers it already holds compressed as gzip even with --disable-compression).
 */
async function layerTar(dir: string, index: number, options: AbortOptions): Promise<string> {
  const blobPath = (digest: string): string => join(dir, 'blobs', ...digest.split(':'));
  const indexJson = JSON.parse(await readFile(join(dir, 'index.json'), 'utf8')) as { manifests?: Array<{ digest?: string }> };
  const manifestDigest = indexJson.manifests?.[0]?.digest;
  if (manifestDigest === undefined) throw new Error(`${dir}: OCI layout without a manifest`);
  const manifest = JSON.parse(await readFile(blobPath(manifestDigest), 'utf8')) as { layers?: Array<{ digest?: string }> };
  const digest = manifest.layers?.[index]?.digest;
  if (digest === undefined) throw new Error(`${dir}: the image has no layer ${index + 1}`);
  const blob = blobPath(digest);
  const handle = await open(blob, 'r');
  const magic = Buffer.alloc(2);
  try {
    await handle.read(magic, 0, 2, 0);
  } finally {
    await handle.close();
  }
  if (magic[0] !== 0x1f || magic[1] !== 0x8b) return blob;
  const tar = join(dir, `layer-${index + 1}.tar`);
  await pipeline(createReadStream(blob), createGunzip(), createWriteStream(tar), options.signal === undefined ? {} : { signal: options.signal });
  return tar;
}

/**
 * An instruction as the Dockerfile has it, from a history `created_by`: without the shell buildah ran it with
 * and without the `|N NAME=VALUE …` build arguments buildah lists before a RUN's command (SOURCE_DATE_EPOCH,
 * which every RUN step sees, would otherwise lead every line).
 */
export function instructionText(createdBy: string): string {
  const shell = createdBy.indexOf(' /bin/sh -c ');
  const command = /^\|\d+ /.test(createdBy) && shell > 0 ? createdBy.slice(shell + 1) : createdBy;
  return command.replace(/^\/bin\/sh -c (#\(nop\) )?/, '').trim();
}

/**
 * The instructions behind each layer, in layer order: a history entry marked empty_layer made no layer of its
 * own, its changes went into the next layer (buildah without --layers commits a whole stage as one layer).
 */
function layerHistory(config: ImageConfig): string[][] {
  const layers: string[][] = [];
  let pending: string[] = [];
  for (const h of config.history ?? []) {
    pending.push(instructionText(h.created_by ?? ''));
    if (h.empty_layer === true) continue;
    layers.push(pending);
    pending = [];
  }
  return layers;
}

/** Leaf paths at which two JSON values differ, e.g. `config.Env[1]` (at most `limit`). */
export function jsonDifferences(a: unknown, b: unknown, path = '', out: string[] = [], limit = 20): string[] {
  if (out.length >= limit) return out;
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null && Array.isArray(a) === Array.isArray(b)) {
    if (Array.isArray(a) && Array.isArray(b)) {
      for (let i = 0; i < Math.max(a.length, b.length); i++) jsonDifferences(a[i], b[i], `${path}[${i}]`, out, limit);
    } else {
      const x = a as Record<string, unknown>;
      const y = b as Record<string, unknown>;
      for (const k of [...new Set([...Object.keys(x), ...Object.keys(y)])].sort()) jsonDifferences(x[k], y[k], path === '' ? k : `${path}.${k}`, out, limit);
    }
    return out;
  }
  if (JSON.stringify(a) !== JSON.stringify(b)) out.push(path === '' ? '(the whole configuration)' : path);
  return out;
}

/**
 * Says how two images that should be equal differ: the first layer whose diff_id differs, the instruction
 * that made it and the paths it differs in (both images are copied to OCI layouts with uncompressed layers
 * and the two layer tars compared entry by entry), plus any other configuration field that differs.
 * `workDir` receives the temporary OCI layouts, removed before returning.
 */
export async function compareImages(buildah: string, record: StoredImage, replay: StoredImage, workDir: string, options: AbortOptions = {}): Promise<ImageDifference> {
  const [a, b] = await Promise.all([inspectImage(buildah, record.storage, record.image, options), inspectImage(buildah, replay.storage, replay.image, options)]);
  const la = a.rootfs?.diff_ids ?? [];
  const lb = b.rootfs?.diff_ids ?? [];
  const config = jsonDifferences({ ...a, rootfs: undefined }, { ...b, rootfs: undefined });
  const result: ImageDifference = { recordLayers: la.length, replayLayers: lb.length, config, scrubHints: [], causes: [] };
  const first = [...Array(Math.max(la.length, lb.length)).keys()].find((i) => la[i] !== lb[i]);
  if (first === undefined) return result;
  const ha = layerHistory(a);
  const hb = layerHistory(b);
  const layer: LayerDifference = { index: first + 1, createdBy: ha[first] ?? hb[first] ?? [], recordDiffId: la[first], replayDiffId: lb[first], paths: [] };
  result.layer = layer;
  if (layer.recordDiffId !== undefined && layer.replayDiffId !== undefined) {
    const dir = await mkdtemp(join(workDir, 'image-diff-'));
    try {
      await Promise.all([pushUncompressed(buildah, record.storage, record.image, join(dir, 'record'), options), pushUncompressed(buildah, replay.storage, replay.image, join(dir, 'replay'), options)]);
      const [ta, tb] = await Promise.all(['record', 'replay'].map((side) => layerTar(join(dir, side), first, options)));
      const [ea, eb] = await Promise.all([readTarEntries(ta!, options), readTarEntries(tb!, options)]);
      layer.paths = diffTarEntries(ea, eb);
      // The bytes of (some of) the differing files tell timestamps from reordering from random data.
      const files = new Set(ea.filter((e) => e.type === 'file').map((e) => e.path));
      const wanted = new Set(layer.paths.map((p) => p.path).filter((p) => files.has(p)).slice(0, SAMPLED_PATHS));
      const [sa, sb] = await Promise.all([readTarSamples(ta!, wanted, SAMPLE_BYTES, options), readTarSamples(tb!, wanted, SAMPLE_BYTES, options)]);
      result.causes = classifyDifferences(layer.paths, layer.createdBy, { record: sa, replay: sb });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  result.scrubHints = scrubProfilesFor(layer.paths.map((p) => p.path));
  return result;
}

/** Lines for the causes of a layer's differing paths: each cause, the instructions named, some paths, the fix. */
function formatCauses(causes: readonly Cause[], maxPaths: number): string[] {
  const lines: string[] = [];
  const short = (c: string): string => (c.length > 120 ? `${c.slice(0, 117)}...` : c);
  for (const c of causes) {
    const count = `${c.paths.length} path${c.paths.length === 1 ? '' : 's'}`;
    const by = c.madeBy.length === 0 ? '' : `, made by: ${c.madeBy.map((m) => `\`${short(m)}\` (${why(m, c)})`).join('; ')}`;
    lines.push(`  - ${c.title} (${count})${by}`);
    const limit = c.kind === 'random' || c.kind === 'other' ? maxPaths : Math.min(5, maxPaths);
    const noted = new Set(c.notes.map((n) => n.split(': ')[0]));
    const shown = [...c.notes, ...c.paths.filter((p) => !noted.has(p.path)).map((p) => `${p.path}: ${p.what}`)].slice(0, limit);
    for (const line of shown) lines.push(`      ${line}`);
    if (c.paths.length > shown.length) lines.push(`      … and ${c.paths.length - shown.length} more`);
    lines.push(`      fix: ${c.fix}`);
  }
  return lines;
}

/** The explanation `build --check` prints when the digests differ. */
export function formatImageDifference(d: ImageDifference, digests: { record: string; replay: string }, maxPaths = 40): string {
  const lines = [`fetch-oracle build: NOT reproducible: the offline rebuild gave ${digests.replay}, the recorded build ${digests.record}.`];
  if (d.layer !== undefined) {
    const l = d.layer;
    const total = Math.max(d.recordLayers, d.replayLayers);
    lines.push(`  first differing layer: ${l.index} of ${total}${l.createdBy.length === 0 ? '' : l.createdBy.length === 1 ? `, made by: ${l.createdBy[0]}` : ', made by these instructions (pass --layers for one layer per instruction):'}`);
    if (l.createdBy.length > 1) for (const c of l.createdBy) lines.push(`    ${c.length > 160 ? `${c.slice(0, 157)}...` : c}`);
    lines.push(`    record ${l.recordDiffId ?? '(no such layer)'}`);
    lines.push(`    replay ${l.replayDiffId ?? '(no such layer)'}`);
    if (l.paths.length > 0 && d.causes.length > 0) {
      lines.push(`  paths that differ in that layer (${l.paths.length}), by cause:`);
      lines.push(...formatCauses(d.causes, maxPaths));
    } else if (l.paths.length > 0) {
      lines.push(`  paths that differ in that layer (${l.paths.length}):`);
      for (const p of l.paths.slice(0, maxPaths)) lines.push(`    ${p.path}: ${p.what}`);
      if (l.paths.length > maxPaths) lines.push(`    … and ${l.paths.length - maxPaths} more`);
    } else if (l.recordDiffId !== undefined && l.replayDiffId !== undefined) {
      lines.push('  the two layers hold the same paths with the same content and metadata (the tar streams differ in order or padding)');
    }
  } else {
    lines.push('  every layer is identical');
  }
  if (d.config.length > 0) lines.push(`  configuration fields that differ: ${d.config.join(', ')}`);
  if (d.scrubHints.length > 0) {
    lines.push(`  some of these paths are logs or caches that --scrub ${d.scrubHints.join(',')} keeps out of the layers (see docs/reproducible-builds.md)`);
  }
  return `${lines.join('\n')}\n`;
}
