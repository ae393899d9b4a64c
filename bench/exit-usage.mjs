// Preload (`node --import`) for a benchmark that runs a command in its own process as users run it: at exit,
// writes the process's peak RSS and CPU time (every thread, start to exit) to $FO_BENCH_USAGE_FILE as JSON.
import { readFileSync, writeFileSync } from 'node:fs';

/**
 * This process's own peak RSS in MB: VmHWM of its memory map. Not `resourceUsage().maxRSS`: Linux keeps, for
 * a process that was spawned, the larger of its own peak and its parent's RSS when it was spawned, so a
 * command run from a benchmark holding 230 MB reported 230 MB whatever it used itself. (`peakRssMb` in
 * cli-run.ts reads the same for the benchmarks' TypeScript; this preload runs without a loader.)
 */
function ownPeakRssMb() {
  return Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 0) / 1024;
}

const file = process.env['FO_BENCH_USAGE_FILE'];
if (file !== undefined) {
  process.on('exit', () => {
    const usage = process.resourceUsage();
    writeFileSync(file, JSON.stringify({ maxRssMb: ownPeakRssMb(), cpuSeconds: (usage.userCPUTime + usage.systemCPUTime) / 1e6 }));
  });
}
