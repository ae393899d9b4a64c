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
import { storageOf } from './buildah.ts';
import { buildahArgv } from './build.ts';
import type { BuildInit, StageVariables } from './build.ts';

/** Where the input drive is unpacked in the guest (the init's $FETCH_ORACLE_INPUT). */
export const GUEST_INPUT = '/mnt/input';
/** The guest shim's CA certificate (guest/machine-mode.ts makes it there). */
export const GUEST_CA_CERT = '/run/fetch-oracle/ca/ca-cert.pem';
/** buildah's storage in the guest: on the root file system (the image's free space; changes stay in the machine). */
export const GUEST_STORAGE = '/var/lib/fetch-oracle-build';
/** Names on the output drive. */
export const OUTPUT_ARCHIVE = 'image.oci.tar';
export const OUTPUT_IID = 'iid';
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
}

/** Replaces the staging directory's path by the guest's in every argument (buildahArgv gives host paths). */
function toGuest(arg: string, staging: string): string {
  return arg.split(staging).join(GUEST_INPUT);
}

/** The guest script: build, push, and on failure a one-line reason the host prints (space, memory). */
export function guestScript(buildah: readonly string[], storage: readonly string[]): string {
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
logged ${q(buildah)}
status=$?
if [ "$status" -ne 0 ]; then reason; exit "$status"; fi
mark 'buildah push'
if ! logged buildah ${q(storage)} push --quiet --disable-compression "$(cat /var/tmp/fetch-oracle-iid)" "oci-archive:$out/${OUTPUT_ARCHIVE}" >/dev/null; then reason; rm -f "$out/${OUTPUT_ARCHIVE}"; exit 1; fi
cp /var/tmp/fetch-oracle-iid "$out/${OUTPUT_IID}"
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
  const guestStorage = ['--root', storage.root, '--runroot', storage.runroot, '--storage-driver', 'vfs'];
  const invocation = await buildahArgv(
    { ...init, context, buildah: 'buildah', storage },
    { iidfile: '/var/tmp/fetch-oracle-iid', caCert: GUEST_CA_CERT, scratch: join(staging, 'scrub'), dockerfiles: join(staging, 'dockerfiles') },
  );
  const argv = invocation.argv.map((a) => toGuest(a, staging));
  await writeFile(join(staging, 'build.sh'), guestScript(argv, guestStorage));
  return { inputDir: staging, argv: ['sh', `${GUEST_INPUT}/build.sh`], variables: invocation.variables, buildahArgv: argv };
}

/** What the guest left on the output drive: the image ID and archive, or the reason it failed. */
export async function readMachineBuildOutput(dir: string): Promise<{ iid?: string; archive?: string; failure?: string }> {
  const text = (name: string): Promise<string | undefined> => readFile(join(dir, name), 'utf8').then((t) => t.trim(), () => undefined);
  const iid = await text(OUTPUT_IID);
  const failure = await text(OUTPUT_FAILURE);
  const archive = (await stat(join(dir, OUTPUT_ARCHIVE)).catch(() => undefined))?.isFile() === true ? join(dir, OUTPUT_ARCHIVE) : undefined;
  return {
    ...(iid === undefined || iid === '' ? {} : { iid: iid.startsWith('sha256:') ? iid : `sha256:${iid}` }),
    ...(archive === undefined ? {} : { archive }),
    ...(failure === undefined || failure === '' ? {} : { failure }),
  };
}
