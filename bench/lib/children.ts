/**
 * Processes the benchmark starts (the Pantheon worker, the bare worker, the
 * raw Ray script): each in a process group of its own, so stopping it stops
 * what it started too (the worker's Python bridge).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { stopGroup, tailFile, waitFor } from '../../stack/processes';

export interface BenchChild {
  pid: number;
  logFile: string;
  /** Resolves (never rejects) when the process exits, with how it ended. */
  exited: Promise<string>;
  stop(): Promise<void>;
}

/**
 * Starts `command` with its output in `logFile`; resolves once the log shows
 * `readyLine`, rejects if the process exits first or `timeoutMs` passes.
 */
export async function startChild(
  command: string,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; cwd: string; logFile: string; readyLine: string; timeoutMs: number },
): Promise<BenchChild> {
  fs.mkdirSync(path.dirname(opts.logFile), { recursive: true });
  const out = fs.openSync(opts.logFile, 'w');
  const child: ChildProcess = spawn(command, args, {
    cwd: opts.cwd,
    env: opts.env,
    detached: true,
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  const pid = child.pid;
  let exitedHow: string | undefined;
  const exited = new Promise<string>((resolve) =>
    child.once('exit', (code, signal) => {
      exitedHow = `exited (code ${code}, signal ${signal})`;
      resolve(exitedHow);
    }),
  );
  const stop = () => stopGroup(pid, 30_000);
  try {
    await waitFor(
      `${path.basename(opts.logFile)} to show "${opts.readyLine}"`,
      () => {
        if (exitedHow) throw new Error(`${command} ${exitedHow}:\n${tailFile(opts.logFile)}`);
        return fs.readFileSync(opts.logFile, 'utf8').includes(opts.readyLine) ? true : undefined;
      },
      opts.timeoutMs,
      100,
    );
  } catch (err) {
    await stop();
    throw err;
  }
  return { pid, logFile: opts.logFile, exited, stop };
}

/** Runs `command` to its end; resolves to its stdout, rejects (with its stderr's tail) if it fails. */
export function runToEnd(
  command: string,
  args: string[],
  opts: { env: NodeJS.ProcessEnv; cwd: string; timeoutMs: number },
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', 'pipe', 'pipe'] });
    const stdout: Buffer[] = [];
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
    child.stderr.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString('utf8')).slice(-8_000);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(Buffer.concat(stdout).toString('utf8'));
      else
        reject(
          new Error(
            `${path.basename(command)} ${args[0] ?? ''} failed (code ${code}, signal ${signal}):\n${stderr.slice(-2_000)}`,
          ),
        );
    });
  });
}
