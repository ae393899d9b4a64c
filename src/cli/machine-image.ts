import type { Command } from './command.ts';

// Placeholder until the subcommand lands (owned by its helper); exits 2 so nothing mistakes it for done.
export const machineImageCommand: Command = {
  summary: 'not yet available',
  help: 'Usage: fetch-oracle machine image (not yet available)\n',
  run(_args, context) {
    context.stderr.write('fetch-oracle machine image: not yet available\n');
    return Promise.resolve(2);
  },
};
