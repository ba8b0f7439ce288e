/** The `pantheon` CLI run as a user runs it: a child process through its bin entry. */
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const BIN = path.resolve(__dirname, '..', '..', 'cli', 'bin.js');

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `pantheon …args` with `extraEnv` on top of this process's environment; never throws on a non-zero exit. */
export async function runPantheon(args: string[], extraEnv: NodeJS.ProcessEnv = {}): Promise<CliRun> {
  try {
    const { stdout, stderr } = await run(process.execPath, [BIN, ...args], {
      env: { ...process.env, ...extraEnv },
      timeout: 240_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: e.code ?? -1, stdout: e.stdout ?? '', stderr: e.stderr ?? '' };
  }
}
