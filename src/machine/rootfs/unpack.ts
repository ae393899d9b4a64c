/**
 * Unpacks the downloaded .debs into the staging tree, the way dpkg would lay out their files but without
 * running maintainer scripts (none of the image's packages needs one to work), and writes the dpkg status
 * file from their control files so that `dpkg -l` inside the machine lists what is installed.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { ImageBuildError } from '../../errors.ts';
import type { AbortOptions } from '../../protocol/blocks.ts';
import { asRoot, runStep } from './tools.ts';
import type { ImageTools } from './tools.ts';

/** One installed package, as the image's metadata and dpkg status name it. */
export interface ImagePackage {
  name: string;
  version: string;
  architecture: string;
  /** The .deb it came from (its file name under apt's archives). */
  file: string;
}

/** A package's control file: its paragraph as written, and the fields the metadata needs. */
interface Control {
  text: string;
  pkg: ImagePackage;
}

/** The value of `field` in one control paragraph (continuation lines not needed for these fields). */
function field(text: string, name: string, deb: string): string {
  const m = new RegExp(`^${name}:[ \\t]*(.+)$`, 'm').exec(text);
  if (m === null) throw new ImageBuildError(`${basename(deb)}: its control file has no ${name} field`);
  return m[1]!.trim();
}

async function readControl(tools: ImageTools, deb: string, options: AbortOptions): Promise<Control> {
  const { stdout } = await runStep(`dpkg-deb --field ${basename(deb)}`, [tools.dpkgDeb, '--field', deb], options);
  const text = stdout.replace(/\n+$/, '');
  return { text, pkg: { name: field(text, 'Package', deb), version: field(text, 'Version', deb), architecture: field(text, 'Architecture', deb), file: basename(deb) } };
}

/**
 * The /var/lib/dpkg/status dpkg writes after installing these: each control paragraph with
 * `Status: install ok installed` after its Package line, sorted by package name (dpkg's own order).
 */
export function dpkgStatus(controls: ReadonlyArray<{ text: string; pkg: ImagePackage }>): string {
  const sorted = [...controls].sort((a, b) => (a.pkg.name < b.pkg.name ? -1 : a.pkg.name > b.pkg.name ? 1 : 0));
  return sorted.map((c) => `${c.text.replace(/^(Package:.*)$/m, '$1\nStatus: install ok installed')}\n\n`).join('');
}

/**
 * Extracts every .deb (`dpkg-deb -x`, as root: the packages' owners and modes) into `root` in the order
 * given (sorted by file name: a path two packages ship is the later one's, the same on every build), then
 * writes the dpkg status. Resolves to the packages, sorted by name.
 */
export async function unpackPackages(tools: ImageTools, debs: readonly string[], root: string, options: AbortOptions = {}): Promise<ImagePackage[]> {
  const controls: Control[] = [];
  for (const deb of debs) {
    controls.push(await readControl(tools, deb, options));
    await runStep(`dpkg-deb -x ${basename(deb)}`, asRoot(tools, [tools.dpkgDeb, '-x', deb, root]), options);
  }
  for (const dir of ['var/lib/dpkg/info', 'var/lib/dpkg/updates']) await mkdir(join(root, dir), { recursive: true });
  await writeFile(join(root, 'var/lib/dpkg/status'), dpkgStatus(controls));
  return controls.map((c) => c.pkg).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
