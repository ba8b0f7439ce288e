/**
 * The Node side of the node launcher (ray-tasks/pantheon_runtime/node_launcher.py):
 * a Python process that has imported the `ray` CLI once and forks a
 * `ray start` per node. A node start is on the autoscaler's reaction path, and
 * the CLI's own start-up (about 1.5 s of a 3.5 s local node start on this
 * host) is the one part of it that is ours to save.
 *
 * It is started by `warmUp()` (the local provider calls it when it first lists
 * nodes, so only a worker that runs the autoscaler pays for it) and supervised
 * like the Ray bridge, with which it shares the JSON-lines client. When it cannot
 * start, a node is started by the CLI instead: slower, never lost.
 */
import type { Logger } from 'pino';
import * as path from 'node:path';
import { rayProcessEnv, type StackConfig } from '../../../../stack/config';
import { PythonHelper } from '../../../../stack/python-helper';
import { rayCliLauncher, type RayStartLauncher } from '../../../../stack/ray-nodes';

export class LocalNodeLauncher {
  private readonly helper: PythonHelper;
  private readonly cli: RayStartLauncher;
  private warming?: Promise<void>;

  constructor(
    stack: StackConfig,
    private readonly logger: Logger,
  ) {
    this.cli = rayCliLauncher(stack);
    this.helper = new PythonHelper({
      python: path.join(stack.venvBin, 'python'),
      rayTasksDir: stack.rayTasksDir,
      rayAddress: stack.ray.address,
      logger,
      module: 'pantheon_runtime.node_launcher',
      title: 'the node launcher',
      // The nodes it forks inherit this environment, as they would from the CLI.
      env: rayProcessEnv(stack),
    });
  }

  /** The launcher's process id while it runs (the parent of the nodes it started). */
  get pid(): number | undefined {
    return this.helper.pid;
  }

  /** Starts the launcher in the background, so that the first node start finds its imports done. */
  warmUp(): void {
    this.warming ??= this.helper.start().catch((err: unknown) => {
      this.warming = undefined; // the next warm-up tries again
      this.logger.warn({ err }, 'node launcher did not start; nodes start through the ray CLI meanwhile');
    });
  }

  /** Resolves once the launcher runs, or has failed to start (node starts then go through the CLI). */
  async ready(): Promise<void> {
    this.warmUp();
    await this.warming;
  }

  /**
   * Starts `ray start <args>` through the launcher. If the launcher cannot be
   * started, the CLI starts the node. Once a request is sent the answer is the
   * launcher's: retrying through the CLI then could start the node twice.
   */
  readonly launch: RayStartLauncher = async (args, logFile) => {
    try {
      await this.helper.start();
    } catch (err) {
      this.logger.warn({ err }, 'node launcher unavailable; starting the node through the ray CLI');
      return this.cli(args, logFile);
    }
    // The node runs where a CLI start from this process would run it.
    const { pid } = await this.helper.call<{ pid: number }>('launch', { args, logFile, cwd: process.cwd() });
    return { pid, logFile };
  };

  async close(): Promise<void> {
    await this.helper.close();
  }
}
