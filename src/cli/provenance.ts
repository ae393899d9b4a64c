/** `fetch-oracle provenance`: a signed SLSA v1 provenance statement for a netlock's build, and its verification. */
import { join, resolve } from 'node:path';
import type { Command, CommandContext } from './command.ts';
import { parseTrustedKeys, UsageError } from './common.ts';
import { parseOptions, str, strs } from './options.ts';
import { netlockRootOf } from '../netlock/file.ts';
import type { ContentDescriptor, ResourceDescriptor } from '../protocol/provenance.ts';
import { verifyProvenanceFile, writeProvenance } from '../provenance/provenance-file.ts';
import { fileSubjects, imageSubject } from '../provenance/subjects.ts';
import { KEY_FILE, LocalSigner } from '../signing/local-signer.ts';
import { FsBlockStore } from '../store/fs-block-store.ts';
import { createBlockStore } from '../store/index.ts';
import type { BlockStore } from '../store/block-store.ts';

export const PROVENANCE_HELP = `Usage: fetch-oracle provenance NETLOCK (--subject PATH | --image-id [NAME=]ID)... --out FILE.intoto.jsonl
                               [--data DIR | --ipfs URL] [--key KEYFILE]
       fetch-oracle provenance --verify FILE.intoto.jsonl --trust KEY... [--netlock NETLOCK [--data DIR | --ipfs URL]]
                               [--subject PATH]... [--json]

Writes an in-toto Statement v1 with a SLSA Provenance v1 predicate, signed as a DSSE envelope with the
oracle's ed25519 key (one envelope per line). Its resolved dependencies are the netlock's root and every entry
of it (URL, body sha256/sha512, body CID, record CID, method, status, variant), read from the signed DAG; its
subjects are the build's outputs. Replay is fail-closed, so the statement says the list is complete.
See docs/provenance.md (format, and how to check it with in-toto, cosign or slsa-verifier).

Options:
  --subject PATH         an output file (its sha256), or a directory (each file under it); repeatable
  --image-id [NAME=]ID   an image ID as build prints it (sha256:<hex>), subject NAME (default "image"); repeatable
  --out FILE             where to write the envelope (.intoto.jsonl; written atomically)
  --data DIR             data directory with the netlock's blocks and the oracle key (default as for record)
  --ipfs URL             read the netlock's blocks from Kubo (its RPC API) instead
  --key KEYFILE          the oracle key file to sign with (default DIR/${KEY_FILE}; never created)
  --verify FILE          verify FILE instead: payload type, signature by a --trust key, statement shape; with
                         --netlock, that it lists exactly that netlock; with --subject, that each file's sha256
                         is the subject of the same name
  --trust KEY            a trusted ed25519 public key (hex; repeatable; required with --verify)
  --netlock NETLOCK      with --verify: the netlock the statement must match
  --json                 with --verify: print the verified statements as JSON
  -h, --help             show this help

Exit status: 0 written / verified; 1 on failure (the code names it, e.g. ORACLE_ERR_BAD_SIGNATURE,
ORACLE_ERR_SUBJECT_MISMATCH); 2 for a usage error.
`;

export const provenanceCommand: Command = {
  help: PROVENANCE_HELP,
  run: runProvenance,
};

/** The block source --data / --ipfs name, and how to close it. */
function openStore(values: Record<string, unknown>, dataDir: string): BlockStore {
  const ipfs = str(values['ipfs']);
  // Against Kubo, no cache in front (as verify): a block Kubo lost must be reported, not served from a cache.
  return ipfs === undefined ? new FsBlockStore(dataDir) : createBlockStore({ ipfs, cache: false });
}

/** `--image-id [NAME=]ID` → a subject. */
export function imageSubjectFlag(text: string): ResourceDescriptor {
  const eq = text.indexOf('=');
  return eq > 0 ? imageSubject(text.slice(eq + 1), text.slice(0, eq)) : imageSubject(text);
}

export async function runProvenance(args: string[], context: CommandContext): Promise<number> {
  const { values, positionals } = parseOptions(
    args,
    {
      subject: { type: 'string', multiple: true },
      'image-id': { type: 'string', multiple: true },
      out: { type: 'string' },
      ipfs: { type: 'string' },
      key: { type: 'string' },
      verify: { type: 'string' },
      trust: { type: 'string', multiple: true },
      netlock: { type: 'string' },
      json: { type: 'boolean' },
    },
    PROVENANCE_HELP,
  );
  if (values['help'] === true) {
    context.stdout.write(PROVENANCE_HELP);
    return 0;
  }
  const dataDir = resolve(str(values['data']) ?? context.defaultDataDir);
  const cwd = process.cwd();
  const verifyPath = str(values['verify']);
  if (verifyPath !== undefined) {
    if (positionals.length > 0) throw new UsageError(`--verify takes no NETLOCK positional (use --netlock NETLOCK)\n\n${PROVENANCE_HELP}`);
    for (const flag of ['out', 'key', 'image-id'] as const) if (values[flag] !== undefined) throw new UsageError(`--${flag} does not apply with --verify`);
    const trust = strs(values['trust']);
    if (trust.length === 0) throw new UsageError('--verify needs --trust KEY (the oracle public key, hex): a signature by any key proves nothing');
    const netlockPath = str(values['netlock']);
    const store = netlockPath === undefined ? undefined : openStore(values, dataDir);
    try {
      const verified = await verifyProvenanceFile(verifyPath, {
        trusted: parseTrustedKeys(trust),
        cwd,
        subjects: strs(values['subject']),
        ...(netlockPath === undefined || store === undefined ? {} : { netlock: { root: await netlockRootOf(netlockPath), store } }),
      });
      if (values['json'] === true) {
        context.stdout.write(`${JSON.stringify(verified, null, 2)}\n`);
      } else {
        for (const v of verified) {
          const bd = v.statement.predicate.buildDefinition;
          context.stdout.write(
            `${verifyPath}:${v.line}: OK: signed by ${v.keyid}; netlock ${String(bd.externalParameters['netlock'])}${netlockPath === undefined ? ' (not checked: no --netlock)' : ' (matches)'}; ` +
              `${bd.resolvedDependencies.length - 1} dependencies; subjects: ${v.statement.subject.map((s) => `${s.name ?? '?'} sha256:${s.digest['sha256'] ?? '?'}`).join(', ')}\n`,
          );
        }
      }
      return 0;
    } finally {
      await store?.close();
    }
  }
  for (const flag of ['trust', 'netlock', 'json'] as const) if (values[flag] !== undefined) throw new UsageError(`--${flag} applies only with --verify`);
  const netlockPath = positionals[0];
  if (netlockPath === undefined || positionals.length > 1) throw new UsageError(`provenance takes one NETLOCK (a netlock file or a file holding its root CID)\n\n${PROVENANCE_HELP}`);
  const out = str(values['out']);
  if (out === undefined) throw new UsageError('provenance needs --out FILE.intoto.jsonl');
  const paths = strs(values['subject']);
  const images = strs(values['image-id']);
  if (paths.length + images.length === 0) throw new UsageError('provenance needs at least one --subject PATH or --image-id ID: the statement is about the build\'s outputs');
  const subjects = [...(await fileSubjects(paths, cwd)), ...images.map(imageSubjectFlag)];
  const signer = await LocalSigner.load(str(values['key']) ?? join(dataDir, KEY_FILE));
  const root = await netlockRootOf(netlockPath);
  const store = openStore(values, dataDir);
  try {
    const { statement } = await writeProvenance({ root, store, subjects, signer, invocation: { tool: 'provenance' }, out: resolve(out) });
    context.stdout.write(`provenance for netlock ${root}: ${statement.predicate.buildDefinition.resolvedDependencies.length - 1} dependencies, ${statement.subject.length} subject(s), written to ${out}\n`);
  } finally {
    await store.close();
  }
  return 0;
}

/** What `run`, `build` and `machine run` pass to write their `--provenance FILE`. */
export interface BuildProvenanceInit {
  out: string;
  netlockPath: string;
  dataDir: string;
  /** Output files/directories (sha256 of each file) and image IDs (`sha256:…`). */
  paths?: readonly string[];
  imageIds?: readonly string[];
  tool: string;
  command?: readonly string[];
  startedOn: Date;
  byproducts?: readonly ContentDescriptor[];
}

/**
 * Writes a build's provenance after it succeeded: the netlock read from the data directory's blocks, the
 * statement signed with the data directory's oracle key (created with the directory, as `record` does).
 */
export async function writeBuildProvenance(init: BuildProvenanceInit): Promise<string> {
  const subjects = [...(await fileSubjects(init.paths ?? [], process.cwd())), ...(init.imageIds ?? []).map((id) => imageSubject(id))];
  const signer = await LocalSigner.loadOrCreate(init.dataDir);
  const root = await netlockRootOf(init.netlockPath);
  const store = new FsBlockStore(init.dataDir);
  try {
    await writeProvenance({
      root,
      store,
      subjects,
      signer,
      invocation: { tool: init.tool, ...(init.command === undefined ? {} : { command: init.command }), startedOn: init.startedOn.toISOString(), finishedOn: new Date().toISOString(), ...(init.byproducts === undefined ? {} : { byproducts: init.byproducts }) },
      out: init.out,
    });
  } finally {
    await store.close();
  }
  return `provenance: ${subjects.length} subject(s), netlock ${root}, signed by ${Buffer.from(signer.publicKey).toString('hex')}, written to ${init.out}`;
}

/** The help lines of `--provenance` for run, build and machine run. */
export const PROVENANCE_FLAG_HELP = `  --provenance FILE      after a clean build, write a signed SLSA v1 provenance statement (.intoto.jsonl;
                         docs/provenance.md) listing every netlock entry as a dependency`;
