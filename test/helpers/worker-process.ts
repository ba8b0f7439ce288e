/**
 * A Pantheon worker in a child process (`tsx workers/main.ts`), in a process
 * group of its own (Node, tsx and the Python bridge), so a fault test can
 * kill -9 all of it at once, as a crashed machine would leave things.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { REPO_ROOT } from '../../stack/config';
import { groupAlive, stopGroup, waitFor } from '../../stack/processes';

export interface WorkerProcess {
  readonly pid: number;
  /** SIGKILL to the whole process group; resolves once the group is gone. */
  kill9(): Promise<void>;
  /** SIGTERM (graceful shutdown), SIGKILL after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
  /** The last lines the worker wrote, for failure messages. */
  output(): string;
}

const READY_MESSAGE = '"msg":"worker running"';
const KEEP_LINES = 200;

/** Starts a worker process and resolves once it polls Temporal (its "worker running" log line). */
export async function startWorkerProcess(
  env: NodeJS.ProcessEnv = {},
  startTimeoutMs = 120_000,
): Promise<WorkerProcess> {
  const child: ChildProcess = spawn(
    path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx'),
    ['workers/main.ts'],
    {
      cwd: REPO_ROOT,
      env: { ...process.env, LOG_LEVEL: 'info', ...env },
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  if (child.pid === undefined) throw new Error('could not start a worker process');
  const pid = child.pid;
  const lines: string[] = [];
  let ready = false;
  let onReady: (() => void) | undefined;
  const collect = (chunk: Buffer) => {
    for (const line of chunk.toString('utf8').split('\n')) {
      if (!line) continue;
      lines.push(line);
      if (lines.length > KEEP_LINES) lines.shift();
      if (!ready && line.includes(READY_MESSAGE)) {
        ready = true;
        onReady?.();
      }
    }
  };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const output = () => lines.join('\n');

  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`worker process ${pid} not ready in ${startTimeoutMs} ms:\n${output()}`)),
        startTimeoutMs,
      );
      onReady = () => {
        clearTimeout(timer);
        resolve();
      };
      if (ready) onReady();
      void exited.then(() => {
        clearTimeout(timer);
        reject(new Error(`worker process ${pid} exited before it was ready:\n${output()}`));
      });
    });
  } catch (err) {
    if (groupAlive(pid)) process.kill(-pid, 'SIGKILL');
    throw err;
  }

  return {
    pid,
    async kill9() {
      if (groupAlive(pid)) process.kill(-pid, 'SIGKILL');
      await exited;
      await waitFor(
        `process group ${pid} to die after SIGKILL`,
        () => (groupAlive(pid) ? undefined : true),
        10_000,
        50,
      );
    },
    stop: (graceMs = 30_000) => stopGroup(pid, graceMs),
    output,
  };
}
