/**
 * Cancelling a pipeline cancels its steps' Ray tasks, checked through Ray's
 * own state API (GET /api/v0/tasks), not through the dispatcher's bookkeeping.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { listRayTasksNamed, RAY_TASK_FINAL_STATES } from '../../activities/ray/cluster-state';
import { stepKey } from '../../activities/ray/task-step';
import { recordFigures } from '../helpers/figures';
import { startTestEnv, uniqueId, waitUntil, type TestEnv } from '../helpers/test-env';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Starts a one-step pipeline, waits for Ray to run the step, cancels the workflow; returns Ray's view after. */
async function cancelWhileRunning(task: string, args: unknown[]) {
  const workflowId = uniqueId('cancel');
  const handle = await env.startPipeline(
    { name: 'cancel', project: 'drills', steps: [{ id: 'long', task, args }] },
    workflowId,
  );
  const name = stepKey(workflowId, 'long');
  const dashboard = env.config.ray.dashboardUrl;
  const running = await waitUntil(
    `Ray task ${name} to run`,
    async () => (await listRayTasksNamed(dashboard, name)).find((t) => t.state === 'RUNNING'),
    60_000,
    100,
  );
  const cancelledAt = Date.now();
  await handle.cancel();
  const gone = await waitUntil(
    `Ray task ${name} to end`,
    async () => {
      const task = (await listRayTasksNamed(dashboard, name)).find((t) => t.taskId === running.taskId);
      return task && RAY_TASK_FINAL_STATES.has(task.state) ? task : undefined;
    },
    60_000,
    50,
  );
  const goneMs = Date.now() - cancelledAt;
  const err = await handle.result().catch((e: unknown) => e);
  return { running, gone, goneMs, err, handle };
}

test('workflow cancel during sleep(60): the Ray task is gone within 5 s', async () => {
  const { gone, goneMs, err } = await cancelWhileRunning('pantheon_tasks.testkit:sleep', [60]);
  recordFigures('cancel', { cancelToRayTaskGoneMs: goneMs });
  expect(gone.state).toBe('FAILED');
  expect(gone.errorType).toBe('TASK_CANCELLED');
  expect(goneMs).toBeLessThan(5_000);
  expect(err).toBeInstanceOf(WorkflowFailedError);
});

test('a task that swallows the interrupt is force-killed after the grace period', async () => {
  const { running, gone, goneMs } = await cancelWhileRunning('pantheon_tasks.testkit:stubborn_sleep', [60]);
  recordFigures('cancel-forced', { cancelToRayTaskGoneMs: goneMs, graceMs: env.config.cancelGraceMs });
  expect(gone.state).toBe('FAILED');
  // Forced: Ray killed the worker process that ran it.
  expect(running.workerPid).not.toBeNull();
  await waitUntil(
    'the worker process to die',
    async () => (isAlive(running.workerPid!) ? undefined : true),
    10_000,
  );
  expect(goneMs).toBeLessThan(5_000 + env.config.cancelGraceMs);
});
