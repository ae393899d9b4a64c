/** The shape every `fetch-oracle` command has, so the dispatcher (main.ts) can run any of them the same way. */
import type { Writable } from 'node:stream';

/** What a command gets from the dispatcher: its defaults and where to print. */
export interface CommandContext {
  /** --data when not given: $FETCH_ORACLE_DATA, else $XDG_DATA_HOME/fetch-oracle or ~/.local/share/fetch-oracle. */
  defaultDataDir: string;
  stdin: AsyncIterable<Uint8Array>;
  stdout: Writable;
  stderr: Writable;
}

export interface Command {
  /** The command's help: printed for --help, and after a usage error. */
  help: string;
  /** Parses `args` (through parseCommandLine) and runs; resolves to the exit code, throws UsageError for 2. */
  run(args: string[], context: CommandContext): Promise<number>;
}

/**
 * A command as its dispatcher lists it: the summary, and its module imported only when it runs (or prints its
 * help), so a process loads the code of one command, not of all (`replay` starts ~30 MB smaller).
 */
export interface ListedCommand {
  /** One line (continuation lines indented to match) for the list in `fetch-oracle --help`. */
  summary: string;
  load(): Promise<Command>;
  /**
   * Runs through a data set to its end (no server): its process caps V8's young generation (`v8-tuning.ts`),
   * which lowers its peak memory at no cost in time.
   */
  batch?: true;
}
