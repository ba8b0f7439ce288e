/**
 * Cancelling a pipeline cancels its steps' Ray tasks, checked through Ray's
 * own state API (GET /api/v0/tasks), not through the dispatcher's bookkeeping.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { listRayTasksNamed, RAY_TASK_FINAL_STATES } from '../../stack/ray-cluster-state';
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

test('an attempt never attaches to work an earlier attempt asked to stop: it waits, then starts afresh', async () => {
  // The race behind a step timeout on a loaded machine: attempt 1 cancels its task at its deadline,
  // and Temporal starts attempt 2 before Ray has reported the task ended. Sent back to back here, so
  // the dispatcher sees the second submit while the cancelled task is still running (it swallows
  // the interrupt). Attaching would hand attempt 2 the "cancelled" outcome of attempt 1.
  const bridge = env.worker!.bridge;
  const key = stepKey(uniqueId('stopping'), 'step');
  const submit = (attempt: number, basedOn: number | null) =>
    bridge.call<{ generation: number; attached: boolean; state: string; history: { outcome: string }[] }>(
      'submit',
      {
        key,
        run: 'run-1',
        attempt,
        task: 'pantheon_tasks.testkit:stubborn_sleep',
        args: [60],
        kwargs: {},
        options: { num_cpus: 0.1 },
        limits: {
          allowed_packages: env.config.allowedTaskPackages,
          max_result_bytes: env.config.maxResultBytes,
          memory_guard: 'off',
        },
        plan: { basedOn },
      },
    );
  expect(await submit(1, null)).toMatchObject({ generation: 1, attached: false });
  await waitUntil(
    `${key} to run`,
    async () =>
      (await bridge.call<{ state: string }>('status', { key })).state === 'running' ? true : undefined,
    60_000,
    50,
  );
  const grace = 1_000;
  const [cancelled, second] = await Promise.all([
    bridge.call<{ cancelled: boolean }>('cancel', { key, run: 'run-1', attempt: 1, graceMs: grace }),
    submit(2, 1),
  ]);
  expect(cancelled.cancelled).toBe(true);
  expect(second).toMatchObject({ generation: 2, attached: false });
  expect(second.history.map((h) => h.outcome)).toEqual(['cancelled']);
  await bridge.call('cancel', { key, run: 'run-1', attempt: 2, force: true });
});
