/**
 * A Python helper process the worker supervises: spawns `python -m <module>`
 * (the Ray bridge, `pantheon_runtime.bridge`, by default; the local node
 * launcher too), speaks JSON lines over its stdio, and starts it again on the
 * next call if it dies. Calls in flight when it dies fail with
 * PythonHelperLostError; for the Ray bridge, the activity that made them is
 * retried by Temporal and re-attaches to its Ray task by key.
 *
 * What is said to the Ray bridge is typed in activities/ray/dispatcher-client.ts.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as readline from 'node:readline';
import type { Logger } from 'pino';

export class PythonHelperLostError extends Error {
  override name = 'PythonHelperLostError';
}

export class PythonHelperCallError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
    this.name = 'PythonHelperCallError';
  }
}

export interface PythonHelperOptions {
  python: string;
  rayTasksDir: string;
  rayAddress: string;
  logger: Logger;
  /** How long to wait for the bridge's ready line (for the bridge: connected to Ray). */
  startTimeoutMs?: number;
  env?: NodeJS.ProcessEnv;
  /** The Python module to run (default the Ray bridge, `pantheon_runtime.bridge`). */
  module?: string;
  /** What errors and logs call it (default "the Ray bridge"). */
  title?: string;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

export class PythonHelper {
  private child?: ChildProcessWithoutNullStreams;
  private starting?: Promise<ChildProcessWithoutNullStreams>;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;

  constructor(private readonly options: PythonHelperOptions) {}

  private get title(): string {
    return this.options.title ?? 'the Ray bridge';
  }

  /** Starts the bridge now rather than on the first call. */
  async start(): Promise<void> {
    await this.ensureRunning();
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async call<T>(method: string, params: unknown = {}): Promise<T> {
    const child = await this.ensureRunning();
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (value: unknown) => void, reject });
      child.stdin.write(JSON.stringify({ id, method, params }) + '\n');
    });
  }

  /**
   * Stops the running process (calls in flight fail with PythonHelperLostError), so that the next
   * call starts a fresh one: for the Ray bridge, a driver connected to the cluster as it is now,
   * not to a head that died.
   */
  async restart(): Promise<void> {
    await this.starting?.catch(() => undefined);
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGKILL');
    await exited;
  }

  async close(): Promise<void> {
    this.closed = true;
    // A start under way would otherwise leave its process running, unowned, once ready.
    await this.starting?.catch(() => undefined);
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await exited;
    clearTimeout(timer);
  }

  private ensureRunning(): Promise<ChildProcessWithoutNullStreams> {
    if (this.closed) return Promise.reject(new PythonHelperLostError(`${this.title} is closed`));
    if (this.child && this.child.exitCode === null && !this.starting) return Promise.resolve(this.child);
    this.starting ??= this.spawnBridge().finally(() => {
      this.starting = undefined;
    });
    return this.starting;
  }

  private spawnBridge(): Promise<ChildProcessWithoutNullStreams> {
    const { python, rayTasksDir, rayAddress, logger } = this.options;
    const title = this.title;
    const child = spawn(python, ['-u', '-m', this.options.module ?? 'pantheon_runtime.bridge'], {
      cwd: rayTasksDir,
      env: { ...process.env, ...this.options.env, PYTHONPATH: rayTasksDir, RAY_ADDRESS: rayAddress },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const stderr = readline.createInterface({ input: child.stderr });
    stderr.on('line', (line) => logger.debug({ bridge: line }, 'bridge stderr'));
    return new Promise((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new PythonHelperLostError(`${title} was not ready in time (Ray at ${rayAddress})`));
      }, this.options.startTimeoutMs ?? 60_000);
      const lines = readline.createInterface({ input: child.stdout });
      lines.on('line', (line) => {
        let message: {
          id?: number;
          event?: string;
          result?: unknown;
          error?: { type: string; message: string };
        };
        try {
          message = JSON.parse(line);
        } catch {
          logger.warn({ line }, `unparseable line from ${title}`);
          return;
        }
        if (message.event === 'ready') {
          ready = true;
          clearTimeout(timer);
          this.child = child;
          logger.info({ pid: child.pid, rayAddress }, `${title} ready`);
          resolve(child);
          return;
        }
        const pending = message.id === undefined ? undefined : this.pending.get(message.id);
        if (!pending || message.id === undefined) return;
        this.pending.delete(message.id);
        if (message.error)
          pending.reject(new PythonHelperCallError(message.error.type, message.error.message));
        else pending.resolve(message.result);
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        if (this.child === child) this.child = undefined;
        const lost = new PythonHelperLostError(`${title} exited (code ${code}, signal ${signal})`);
        for (const [id, pending] of this.pending) {
          this.pending.delete(id);
          pending.reject(lost);
        }
        if (!ready) reject(lost);
        else if (!this.closed) logger.warn({ code, signal }, `${title} exited; it restarts on the next call`);
      });
    });
  }
}
