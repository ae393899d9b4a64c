// Preload (`node --import`) for a benchmark that runs a command in its own process as users run it: at exit,
// writes the process's peak RSS and CPU time (every thread, start to exit) to $FO_BENCH_USAGE_FILE as JSON.
import { writeFileSync } from 'node:fs';

const file = process.env['FO_BENCH_USAGE_FILE'];
if (file !== undefined) {
  process.on('exit', () => {
    const usage = process.resourceUsage();
    writeFileSync(file, JSON.stringify({ maxRssMb: usage.maxRSS / 1024, cpuSeconds: (usage.userCPUTime + usage.systemCPUTime) / 1e6 }));
  });
}
