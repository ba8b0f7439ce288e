/**
 * One round of the worker-kill drill, shared by the integration test and the
 * soak (`npm run soak`): a pipeline whose one step appends a line to a file
 * after a delay; while the Ray task sleeps, the worker process that runs the
 * step is killed with SIGKILL; a new worker process is started; the pipeline
 * must complete and the file must hold exactly one line.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { listRayTasksNamed } from '../../stack/ray-cluster-state';
import { stepKey } from '../../activities/ray/task-step';
import type { PipelineResult } from '../../core/schemas/pipeline-spec';
import { uniqueId, waitUntil, type TestEnv } from './test-env';
import type { WorkerProcess } from './worker-process';

export interface KillRound {
  /** The worker that finished the round: the next round's victim. */
  survivor: WorkerProcess;
  /** Lines in the step's file: 1 when the side effect happened exactly once. */
  lines: number;
  /** Activity attempts the step took (>= 2: the killed one and the one that attached). */
  attempts: number;
  /** Ray tasks the dispatcher submitted for the step, as Ray itself lists them. */
  rayTasks: number;
  /** Kill to pipeline result. */
  recoveryMs: number;
}

export async function workerKillRound(
  env: TestEnv,
  victim: WorkerProcess,
  dir: string,
  delaySeconds = 4,
): Promise<KillRound> {
  const workflowId = uniqueId('kill-round');
  const file = path.join(dir, `${workflowId}.txt`);
  const handle = await env.startPipeline(
    {
      name: 'kill-round',
      project: 'drills',
      steps: [
        { id: 'write', task: 'pantheon_tasks.testkit:append_line', args: [file, workflowId, delaySeconds] },
      ],
    },
    workflowId,
  );
  const taskName = stepKey(workflowId, 'write');
  // Kill only once Ray runs the task: the worker dies while the side effect is still ahead.
  await waitUntil(
    `Ray task ${taskName} to run`,
    async () => {
      const tasks = await listRayTasksNamed(env.config.ray.dashboardUrl, taskName);
      return tasks.some((t) => t.state === 'RUNNING') ? true : undefined;
    },
    60_000,
    100,
  );
  if (fs.existsSync(file)) throw new Error(`${file} was written before the kill: raise the delay`);
  const killedAt = Date.now();
  await victim.kill9();
  const survivor = await env.startWorkerProcess();
  const result = (await handle.result()) as PipelineResult;
  const recoveryMs = Date.now() - killedAt;
  const lines = fs.readFileSync(file, 'utf8').split('\n').filter(Boolean).length;
  const rayTasks = (await listRayTasksNamed(env.config.ray.dashboardUrl, taskName)).length;
  return { survivor, lines, attempts: result.steps.write?.attempts ?? 0, rayTasks, recoveryMs };
}
