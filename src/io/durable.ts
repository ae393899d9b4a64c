import { open } from 'node:fs/promises';

/** Errors that mean the file system cannot sync a directory at all (nothing to make durable there). */
const CANNOT_SYNC_DIR = new Set(['EINVAL', 'ENOTSUP', 'EOPNOTSUPP', 'EISDIR', 'EBADF']);

/**
 * Makes the names created or renamed in `dir` durable: POSIX does not count a file's name as its data, so
 * syncing a file leaves a fresh name (a rename into place) to the next journal commit of the file system.
 * A file system that cannot sync a directory has nothing to do; any other failure (EIO) is thrown.
 */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } catch (cause) {
    if (!CANNOT_SYNC_DIR.has((cause as NodeJS.ErrnoException).code ?? '')) throw cause;
  } finally {
    await handle.close();
  }
}

/**
 * Puts the data of a file written and closed earlier on disk (fdatasync through a read-only descriptor,
 * which Linux allows: dirty pages belong to the file, not to the descriptor that wrote them). A file removed
 * since (`gc`, a quarantined block) has nothing left to sync.
 */
export async function syncFile(path: string): Promise<void> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (cause) {
    if ((cause as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw cause;
  }
  try {
    await handle.datasync();
  } finally {
    await handle.close();
  }
}
