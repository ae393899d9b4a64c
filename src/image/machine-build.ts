/**
 * `fetch-oracle build --machine`: the host side of a Dockerfile built by buildah INSIDE the Cartesi Machine
 * (docs/cartesi.md "Building a Dockerfile in the machine"). The host stages the input drive: the context, the
 * derived Dockerfiles and scrub directories the host build would use (build.ts, same argv, same flags), and a
 * script that runs `buildah build` and pushes the image as an OCI archive to the output drive. RUN steps share
 * the machine's network namespace (chroot isolation), so the guest shim on 127.0.0.1:8899 is their only
 * network; its CA is bind-mounted where the host build mounts the oracle's.
 */
import { cp, mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { InvalidConfigError } from '../errors.ts';
import { shellQuote } from '../tls/client-env.ts';
import type { AbortOptions } from '../protocol/blocks.ts';
import { storageOf } from './buildah.ts';
import { buildahArgv } from './build.ts';
import type { BuildInit, StageVariables } from './build.ts';
import { ociArchiveImageId } from './oci-archive.ts';

/** Where the input drive is unpacked in the guest (the init's $FETCH_ORACLE_INPUT). */
export const GUEST_INPUT = '/mnt/input';
/** The guest's output folder (the init's $FETCH_ORACLE_OUTPUT), tarred onto the output drive after the build. */
export const GUEST_OUTPUT = '/mnt/output';
/** The guest shim's CA certificate (guest/machine-mode.ts makes it there). */
export const GUEST_CA_CERT = '/run/fetch-oracle/ca/ca-cert.pem';
/** buildah's storage in the guest: on the root file system (the image's free space; changes stay in the machine). */
export const GUEST_STORAGE = '/var/lib/fetch-oracle-build';
/** Names on the output drive. */
export const OUTPUT_ARCHIVE = 'image.oci.tar';
export const OUTPUT_FAILURE = 'failure.txt';
/** A build that failed with less than this free on the storage's file system failed for space. */
const LOW_SPACE_MIB = 64;
/** The packages the machine image needs for `build --machine` (buildah wants netavark to initialise). */
export const BUILD_IMAGE_PACKAGES = 'buildah,netavark';

export interface MachineBuildStage {
  /** The directory to pass as the run's input (it becomes /mnt/input). */
  inputDir: string;
  /** The guest command. */
  argv: string[];
  variables: StageVariables;
  /** The buildah argv as the guest runs it (for the log). */
  buildahArgv: string[];
  /** The user's --tag names, which the machine build does not apply (the image is the archive). */
  droppedTags: string[];
}

/** buildah build's tag options (-t NAME, -tNAME, --tag NAME, --tag=NAME) taken out of `args`. */
export function withoutTags(args: readonly string[]): { args: string[]; tags: string[] } {
  const kept: string[] = [];
  const tags: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i]!;
    if ((a === '-t' || a === '--tag') && i + 1 < args.length) tags.push(args[++i]!);
    else if (a.startsWith('--tag=')) tags.push(a.slice('--tag='.length));
    else if (a.startsWith('-t') && a.length > 2 && !a.startsWith('--')) tags.push(a.slice(2));
    else kept.push(a);
  }
  return { args: kept, tags };
}

/** Replaces the staging directory's path by the guest's in every argument (buildahArgv gives host paths). */
function toGuest(arg: string, staging: string): string {
  return arg.split(staging).join(GUEST_INPUT);
}

/** The guest script: build into the OCI archive, and on failure a one-line reason the host prints (space, memory). */
export function guestScript(buildah: readonly string[]): string {
  const q = (args: readonly string[]): string => args.map(shellQuote).join(' ');
  return `# fetch-oracle build --machine: runs in the Cartesi Machine (busybox sh)
out="$FETCH_ORACLE_OUTPUT"
export TMPDIR=/var/tmp
mark() { echo "fetch-oracle-build: t=$(cut -d' ' -f1 /proc/uptime) $1" >&2; }
# buildah's stderr is also kept in RAM (/tmp is a tmpfs): a full disk is freed again once buildah cleans up,
# so its "no space left on device" is what tells that the space ran out.
errlog=/tmp/fetch-oracle-build.err
logged() {
  rm -f "$errlog.fifo"; mkfifo "$errlog.fifo"
  tee -a "$errlog" <"$errlog.fifo" >&2 &
  tee_pid=$!
  "$@" 2>"$errlog.fifo"
  s=$?
  wait "$tee_pid"
  rm -f "$errlog.fifo"
  return "$s"
}
reason() {
  free=$(df -Pm ${GUEST_STORAGE} | awk 'NR==2 {print $4}')
  if grep -qi 'no space left on device' "$errlog" 2>/dev/null || { [ -n "$free" ] && [ "$free" -lt ${LOW_SPACE_MIB} ]; }; then
    echo "out of space on the machine's root file system ($free MiB free after buildah cleaned up), where buildah's vfs storage and TMPDIR are (each RUN step copies the whole image under vfs): build the machine image with a larger --free-mib" >"$out/${OUTPUT_FAILURE}"
  elif dmesg 2>/dev/null | grep -qi -e 'out of memory' -e 'oom-kill'; then
    echo "out of memory: the guest kernel killed a process ($(dmesg | grep -i -m1 'killed process' | cut -c1-200)): raise --ram-mib" >"$out/${OUTPUT_FAILURE}"
  fi
}
if ! command -v buildah >/dev/null 2>&1; then
  echo "the machine image has no buildah: build it with 'fetch-oracle machine image --packages ${BUILD_IMAGE_PACKAGES} --free-mib 4096 --out IMAGE'" >"$out/${OUTPUT_FAILURE}"
  exit 125
fi
mkdir -p ${GUEST_STORAGE} /var/tmp
mark 'buildah build'
# buildah commits the image straight into the archive on the output drive (its --tag is an oci-archive:
# reference): no image in the guest's storage, no push (which re-read and re-hashed every layer).
logged ${q(buildah)}
status=$?
if [ "$status" -ne 0 ]; then reason; rm -f "$out/${OUTPUT_ARCHIVE}"; exit "$status"; fi
mark done
`;
}

/** What stageMachineBuild needs: the host build's options (the same argv is derived from them). */
export type MachineBuildInit = Pick<BuildInit, 'context' | 'buildahArgs' | 'scrub' | 'caTarget'>;

/**
 * Makes the input directory in `staging` (empty, new): context/, the derived Dockerfiles, scrub directories
 * and build.sh. A context that is not a directory is refused here, before any machine starts.
 */
export async function stageMachineBuild(init: MachineBuildInit, staging: string): Promise<MachineBuildStage> {
  if (!(await stat(init.context).catch(() => undefined))?.isDirectory()) throw new InvalidConfigError(`The build context ${init.context} is not a directory`);
  const context = join(staging, 'context');
  await mkdir(staging, { recursive: true });
  await cp(init.context, context, { recursive: true, verbatimSymlinks: true });
  const storage = storageOf(GUEST_STORAGE);
  const { args: buildahArgs, tags } = withoutTags(init.buildahArgs);
  const invocation = await buildahArgv(
    { ...init, buildahArgs, context, buildah: 'buildah', storage },
    // buildah leaves the iidfile empty when it commits to another transport: the host reads the archive instead.
    { iidfile: '/var/tmp/fetch-oracle-iid', caCert: GUEST_CA_CERT, scratch: join(staging, 'scrub'), dockerfiles: join(staging, 'dockerfiles') },
  );
  const argv = invocation.argv.map((a) => toGuest(a, staging));
  argv.splice(argv.indexOf('build') + 1, 0, '--tag', `oci-archive:${GUEST_OUTPUT}/${OUTPUT_ARCHIVE}`);
  await writeFile(join(staging, 'build.sh'), guestScript(argv));
  return { inputDir: staging, argv: ['sh', `${GUEST_INPUT}/build.sh`], variables: invocation.variables, buildahArgv: argv, droppedTags: tags };
}

/** What the guest left on the output drive: the archive and its image ID, or the reason it failed. */
export async function readMachineBuildOutput(dir: string, options: AbortOptions = {}): Promise<{ iid?: string; archive?: string; failure?: string }> {
  const failure = await readFile(join(dir, OUTPUT_FAILURE), 'utf8').then((t) => t.trim(), () => undefined);
  const archive = (await stat(join(dir, OUTPUT_ARCHIVE)).catch(() => undefined))?.isFile() === true ? join(dir, OUTPUT_ARCHIVE) : undefined;
  const iid = archive === undefined ? undefined : await ociArchiveImageId(archive, options);
  return {
    ...(iid === undefined ? {} : { iid }),
    ...(archive === undefined ? {} : { archive }),
    ...(failure === undefined || failure === '' ? {} : { failure }),
  };
}
