/** The machine and the versions a benchmark ran with, for its result file. */
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as path from 'node:path';

export interface MachineInfo {
  hostname: string;
  cpuModel: string;
  cores: number;
  memoryGb: number;
  os: string;
  node: string;
  python: string;
  ray: string;
  temporal: string;
}

function firstLine(command: string, args: string[]): string {
  try {
    return execFileSync(command, args, {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
    })
      .trim()
      .split('\n')[0]!;
  } catch {
    return 'unknown';
  }
}

export function machineInfo(venvBin: string): MachineInfo {
  const python = path.join(venvBin, 'python');
  return {
    hostname: os.hostname(),
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    cores: os.cpus().length,
    memoryGb: Number((os.totalmem() / 1024 ** 3).toFixed(1)),
    os: `${os.type()} ${os.release()}`,
    node: process.version,
    python: firstLine(python, ['--version']).replace(/^Python /, ''),
    // `ray --version` prints "ray, version 2.x.y"; it is much faster than importing ray.
    ray: firstLine(path.join(venvBin, 'ray'), ['--version']).replace(/^ray, version /, ''),
    // "temporal version 1.x (Server 1.y, UI 2.z)"
    temporal: firstLine(path.join(venvBin, 'temporal'), ['--version']).replace(/^temporal version /, ''),
  };
}

/** The 1-minute load average, and the busy share of the CPUs since `since` (from os.cpus() times). */
export function cpuSnapshot(): { loadAvg1: number; times: { busy: number; total: number } } {
  let busy = 0;
  let total = 0;
  for (const cpu of os.cpus()) {
    const t = cpu.times;
    busy += t.user + t.nice + t.sys + t.irq;
    total += t.user + t.nice + t.sys + t.irq + t.idle;
  }
  return { loadAvg1: Number(os.loadavg()[0]!.toFixed(2)), times: { busy, total } };
}
