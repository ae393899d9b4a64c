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

function digestsOf(json: string, what: string, path: string): string[] {
  try {
    const value = JSON.parse(json) as { manifests?: Array<{ digest?: unknown }>; config?: { digest?: unknown } };
    const digests = what === 'index.json' ? (value.manifests ?? []).map((m) => m.digest) : [value.config?.digest];
    return digests.filter((d): d is string => typeof d === 'string' && DIGEST.test(d));
  } catch (err) {
    throw new InvalidArchiveError(`${path}: ${what} is not JSON: ${(err as Error).message}`, { cause: err });
  }
}

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
  const manifests = digestsOf(index, 'index.json', path);
  if (manifests.length !== 1) throw new InvalidArchiveError(`${path}: index.json names ${manifests.length} manifests, not one`);
  const manifest = small.get(`blobs/sha256/${manifests[0]!.slice('sha256:'.length)}`);
  if (manifest === undefined) throw new InvalidArchiveError(`${path}: the manifest ${manifests[0]!} is not in the archive`);
  if (`sha256:${createHash('sha256').update(manifest).digest('hex')}` !== manifests[0]) throw new InvalidArchiveError(`${path}: the manifest does not hash to ${manifests[0]!}`);
  const [config] = digestsOf(manifest, 'the manifest', path);
  if (config === undefined) throw new InvalidArchiveError(`${path}: the manifest ${manifests[0]} names no config digest`);
  return config;
}
