/**
 * The image ID of an OCI archive (`oci-archive:` as buildah writes it): the digest of the config its one
 * manifest names, which is what buildah's --iidfile gives for an image in its storage. `build --machine` has
 * buildah commit straight into the archive (no image in the guest's storage, so no --iidfile to read).
 */
import { createHash } from 'node:crypto';
import { InvalidArchiveError } from '../errors.ts';
import type { AbortOptions } from '../protocol/blocks.ts';
import { forEachTarEntry } from './tar-entries.ts';

/** index.json and manifests are small; layers are streamed past unread. */
const MAX_JSON_BYTES = 1 << 20;
const DIGEST = /^sha256:[0-9a-f]{64}$/;

/** A JSON document of the archive, parsed; bad JSON is InvalidArchiveError naming `what`. */
function parseJson(json: string, what: string, path: string): { manifests?: Array<{ digest?: unknown }>; config?: { digest?: unknown } } {
  try {
    return JSON.parse(json) as { manifests?: Array<{ digest?: unknown }>; config?: { digest?: unknown } };
  } catch (err) {
    throw new InvalidArchiveError(`${path}: ${what} is not JSON: ${(err as Error).message}`, { cause: err });
  }
}

const isDigest = (d: unknown): d is string => typeof d === 'string' && DIGEST.test(d);

/** The `sha256:…` image ID of the single image in the OCI archive at `path`. */
export async function ociArchiveImageId(path: string, options: AbortOptions = {}): Promise<string> {
  const small = new Map<string, string>();
  await forEachTarEntry(path, options, async (entry) => {
    const name = entry.header.name.replace(/^\.?\/+/, '');
    if (entry.header.type !== 'file' || entry.header.size > MAX_JSON_BYTES) {
      entry.resume();
      return;
    }
    const chunks: Buffer[] = [];
    for await (const chunk of entry as AsyncIterable<Buffer>) chunks.push(chunk);
    small.set(name, Buffer.concat(chunks).toString('utf8'));
  });
  const index = small.get('index.json');
  if (index === undefined) throw new InvalidArchiveError(`${path}: no index.json: not an OCI archive`);
  const manifests = (parseJson(index, 'index.json', path).manifests ?? []).map((m) => m.digest).filter(isDigest);
  if (manifests.length !== 1) throw new InvalidArchiveError(`${path}: index.json names ${manifests.length} manifests, not one`);
  const manifest = small.get(`blobs/sha256/${manifests[0]!.slice('sha256:'.length)}`);
  if (manifest === undefined) throw new InvalidArchiveError(`${path}: the manifest ${manifests[0]!} is not in the archive`);
  if (`sha256:${createHash('sha256').update(manifest).digest('hex')}` !== manifests[0]) throw new InvalidArchiveError(`${path}: the manifest does not hash to ${manifests[0]!}`);
  const config = parseJson(manifest, 'the manifest', path).config?.digest;
  if (!isDigest(config)) throw new InvalidArchiveError(`${path}: the manifest ${manifests[0]} names no config digest`);
  return config;
}
