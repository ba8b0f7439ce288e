/**
 * Resident memory of processes and process groups, read from /proc (Linux).
 * A stack service runs as a process group (the Ray head's raylet, GCS,
 * dashboard and workers; a Ray node's raylet and its workers), so its memory
 * is the sum over the group.
 */
import * as fs from 'node:fs';

const PAGE_BYTES = 4096;
const MB = 1024 * 1024;

/** RSS of one process in MB (0 if it is gone). */
export function processRssMb(pid: number): number {
  try {
    const pages = Number(fs.readFileSync(`/proc/${pid}/statm`, 'utf8').split(' ')[1]);
    return (pages * PAGE_BYTES) / MB;
  } catch {
    return 0;
  }
}

/** The process group of a pid, from /proc/<pid>/stat (field 5, after the command name). */
function processGroupOf(pid: number): number | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(fields[2]);
  } catch {
    return undefined;
  }
}

/** Summed RSS (MB) and member count of each of `groups` (process group ids), in one pass over /proc. */
export function groupRssMb(groups: readonly number[]): Map<number, { rssMb: number; processes: number }> {
  const wanted = new Set(groups);
  const found = new Map<number, { rssMb: number; processes: number }>(
    groups.map((g) => [g, { rssMb: 0, processes: 0 }]),
  );
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    const group = processGroupOf(pid);
    if (group === undefined || !wanted.has(group)) continue;
    const total = found.get(group)!;
    total.rssMb += processRssMb(pid);
    total.processes++;
  }
  return found;
}

export interface MemoryTarget {
  name: string;
  /** A single process, or a whole process group (its leader's pid). */
  kind: 'process' | 'group';
  pid: number;
}

export type MemoryReading = Record<string, { rssMb: number; processes: number }>;

export function readMemory(targets: readonly MemoryTarget[]): MemoryReading {
  const groups = groupRssMb(targets.filter((t) => t.kind === 'group').map((t) => t.pid));
  const reading: MemoryReading = {};
  for (const t of targets) {
    reading[t.name] =
      t.kind === 'process'
        ? { rssMb: processRssMb(t.pid), processes: 1 }
        : (groups.get(t.pid) ?? { rssMb: 0, processes: 0 });
  }
  return reading;
}

/** Samples `targets` every `intervalMs` until stopped; keeps each target's peak. */
export class PeakMemorySampler {
  private readonly peaks: MemoryReading = {};
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly targets: readonly MemoryTarget[],
    intervalMs = 250,
  ) {
    this.sample();
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    const reading = readMemory(this.targets);
    for (const [name, value] of Object.entries(reading)) {
      const peak = this.peaks[name];
      if (!peak || value.rssMb > peak.rssMb) this.peaks[name] = value;
    }
  }

  stop(): MemoryReading {
    clearInterval(this.timer);
    this.sample();
    return this.peaks;
  }
}

/** The direct children of `pid` whose command line contains `needle`. */
export function childPids(pid: number, needle = ''): number[] {
  const found: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid !== pid) continue;
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').replace(/\0/g, ' ');
      if (cmdline.includes(needle)) found.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return found;
}
