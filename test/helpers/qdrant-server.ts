import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

import { REPO_ROOT } from '../../stack/config';

export { REPO_ROOT };
export const VENV_PYTHON = path.join(REPO_ROOT, '.venv', 'bin', 'python');
const SERVER_SCRIPT = path.join(REPO_ROOT, 'stack', 'qdrant-local', 'server.py');
const LISTENING = /qdrant-local listening on (http:\/\/\S+)/;

/** A Qdrant REST endpoint a test can use. */
export interface QdrantEndpoint {
  url: string;
  apiKey?: string;
  /** Stops the server when this helper started it; nothing when it came from QDRANT_URL. */
  stop(): Promise<void>;
}

export interface LocalQdrantServer extends QdrantEndpoint {
  storageDir: string;
  process: ChildProcess;
  /** Everything the server wrote to stderr so far (its log). */
  log(): string;
  /** Everything the server wrote to stdout so far (nothing, by design). */
  stdout(): string;
  /** Sends `signal` and resolves with the exit code once the process has exited. */
  stopWith(signal: NodeJS.Signals): Promise<number | null>;
}

export interface StartOptions {
  apiKey?: string;
  /** Reuse a storage directory (e.g. to test a restart); a fresh temp dir otherwise. */
  storageDir?: string;
  /** Keep the storage directory when stopping (default: removed if this helper made it). */
  keepStorage?: boolean;
  startTimeoutMs?: number;
  /** More server options, e.g. `--llm-url` for graph ingestion. */
  extraArgs?: string[];
}

/**
 * Starts stack/qdrant-local/server.py on a free port (the server picks it
 * with --port 0 and logs the address) and resolves once it is listening.
 */
export function startLocalQdrantServer(options: StartOptions = {}): Promise<LocalQdrantServer> {
  const madeStorage = options.storageDir === undefined;
  const storageDir = options.storageDir ?? mkdtempSync(path.join(tmpdir(), 'pantheon-qdrant-'));
  const args = [SERVER_SCRIPT, '--host', '127.0.0.1', '--port', '0', '--storage', storageDir];
  if (options.apiKey) args.push('--api-key', options.apiKey);
  args.push(...(options.extraArgs ?? []));
  const child = spawn(VENV_PYTHON, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (chunk: string) => (stdout += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  const stopWith = async (signal: NodeJS.Signals) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    const code = await exited;
    if (madeStorage && !options.keepStorage) rmSync(storageDir, { recursive: true, force: true });
    return code;
  };

  return new Promise<LocalQdrantServer>((resolve, reject) => {
    let settled = false;
    const settle = (outcome: () => void) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      outcome();
    };
    const timeoutMs = options.startTimeoutMs ?? 30_000;
    const timer = setTimeout(() => {
      settle(() => reject(new Error(`local Qdrant did not start within ${timeoutMs} ms:\n${stderr}`)));
      void stopWith('SIGKILL');
    }, timeoutMs);
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      stderr += chunk;
      const url = LISTENING.exec(stderr)?.[1];
      if (url === undefined) return;
      settle(() =>
        resolve({
          url,
          apiKey: options.apiKey,
          storageDir,
          process: child,
          log: () => stderr,
          stdout: () => stdout,
          stopWith,
          stop: async () => {
            await stopWith('SIGTERM');
          },
        }),
      );
    });
    child.once('error', (error) => settle(() => reject(error)));
    void exited.then((code) =>
      settle(() => reject(new Error(`local Qdrant exited with ${code} before listening:\n${stderr}`))),
    );
  });
}

/**
 * The Qdrant the integration tests use: the stack's (QDRANT_URL, exported by
 * the jest global setup) when there is one, otherwise a local server of our own.
 */
export async function useQdrant(): Promise<QdrantEndpoint> {
  const url = process.env.QDRANT_URL;
  if (url) return { url, apiKey: process.env.QDRANT_API_KEY || undefined, stop: async () => undefined };
  return startLocalQdrantServer();
}
