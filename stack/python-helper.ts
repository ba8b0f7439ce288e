/**
 * A Python helper process the worker supervises: spawns `python -m <module>`
 * (the Ray bridge, `pantheon_runtime.bridge`, by default; the local node
 * launcher too), speaks JSON lines over its stdio, and starts it again on the
 * next call if it dies. Calls in flight when it dies fail with
 * PythonHelperLostError; for the Ray bridge, the activity that made them is
 * retried by Temporal and re-attaches to its Ray task by key.
 *
 * No line is dropped: an answer that is not JSON fails the call it belongs to
 * (PythonHelperCallError `UnparseableAnswer`, the call found by the id the line
 * starts with); a line that is not JSON and names no call means the stream can
 * no longer be trusted, so the process is stopped and every call in flight
 * fails (PythonHelperLostError, naming the line) rather than waiting forever.
 * The process gets an explicit environment (stack/processes.ts), not the
 * worker's.
 *
 * What is said to the Ray bridge is typed in activities/ray/dispatcher-client.ts.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import * as readline from 'node:readline';
import type { Logger } from 'pino';
import { explicitEnv } from './processes';
import { RAY_AUTH_ENV_KEYS } from './ray-auth';

/**
 * What a Ray client needs of the worker's environment, by name: the token settings (stack/ray-auth.ts)
 * and the setting that keeps `ray.init` on a loopback address (stack/config.ts localRayClientEnv).
 */
const RAY_CLIENT_ENV_KEYS = [...RAY_AUTH_ENV_KEYS, 'RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER'] as const;

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

  /** Why a helper was stopped for a line that was not JSON and named no call. */
  private readonly garbled = new WeakMap<ChildProcessWithoutNullStreams, string>();

  private unparseable(child: ChildProcessWithoutNullStreams, line: string, title: string): void {
    const shown = line.length > 300 ? `${line.slice(0, 300)}...` : line;
    // The bridge writes `{"id":N,...` first: a garbled answer still says whose it is.
    const id = /^\s*\{\s*"id"\s*:\s*(\d+)\s*,/.exec(line)?.[1];
    const pending = id === undefined ? undefined : this.pending.get(Number(id));
    if (pending) {
      this.pending.delete(Number(id));
      this.options.logger.error({ line: shown }, `answer from ${title} is not JSON`);
      pending.reject(
        new PythonHelperCallError(
          'UnparseableAnswer',
          `${title} answered with a line that is not JSON: ${shown}`,
        ),
      );
      return;
    }
    this.options.logger.error({ line: shown }, `${title} wrote a line that is not JSON; stopping it`);
    this.garbled.set(child, `${title} wrote a line that is not JSON and was stopped: ${shown}`);
    child.kill('SIGKILL');
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
      env: explicitEnv({
        ...Object.fromEntries(RAY_CLIENT_ENV_KEYS.map((key) => [key, process.env[key]])),
        ...this.options.env,
        PYTHONPATH: rayTasksDir,
        RAY_ADDRESS: rayAddress,
      }),
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
          this.unparseable(child, line, title);
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
        const why = this.garbled.get(child);
        const lost = new PythonHelperLostError(why ?? `${title} exited (code ${code}, signal ${signal})`);
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
