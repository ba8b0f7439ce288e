/**
 * The autoscaler workflow as an operator drives it, with no load (so no node
 * is started): input checked at the door, naming the field; pause, resume and
 * stop by signal; settings changed by update (checked too); the decision in
 * the Web UI's current details; continue-as-new carrying the state over.
 */
import { WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { PIPELINE_TASK_QUEUE } from '../../core/task-queues';
import { startAutoscalerHarness, type AutoscalerHarness } from '../helpers/autoscaler-harness';
import { uniqueId, waitUntil } from '../helpers/test-env';

const GROUP = 'as-burst';

let harness: AutoscalerHarness;
beforeAll(async () => {
  harness = await startAutoscalerHarness('burst');
});
afterAll(async () => {
  await harness?.close();
});

test('invalid input fails the workflow at once, naming the field', async () => {
  const handle = await harness.env.client.workflow.start('autoscaler', {
    taskQueue: PIPELINE_TASK_QUEUE,
    workflowId: uniqueId('autoscaler-invalid'),
    args: [{ groups: [GROUP], tickIntervalMs: 5, budget: { nodeHours: -1 } }],
  });
  const failure = await handle.result().catch((err: unknown) => err);
  expect(failure).toBeInstanceOf(WorkflowFailedError);
  const cause = (failure as WorkflowFailedError).cause;
  expect(cause?.message).toMatch(/^invalid autoscaler input: tickIntervalMs: .*>=100.*; budget\.nodeHours: /);
});

test('an unknown group fails the workflow, naming it', async () => {
  const handle = await harness.env.client.workflow.start('autoscaler', {
    taskQueue: PIPELINE_TASK_QUEUE,
    workflowId: uniqueId('autoscaler-unknown'),
    args: [{ groups: ['no-such-group'] }],
  });
  const failure = await handle.result().catch((err: unknown) => err);
  expect(failure).toBeInstanceOf(WorkflowFailedError);
  expect(
    String(
      (failure as WorkflowFailedError).cause?.cause instanceof Error
        ? ((failure as WorkflowFailedError).cause?.cause as Error).message
        : '',
    ),
  ).toMatch(/groups: unknown node group "no-such-group"/);
});

test('pause, resume, configure, continue-as-new and stop', async () => {
  const handle = await harness.startAutoscaler({ tickIntervalMs: 300, maxTicksPerRun: 4 });

  // It ticks, decides "nothing to do", and continues as new after 4 ticks with its state.
  const status = await waitUntil(
    'a second run',
    async () => {
      const s = await harness.status();
      // A tick whose observation failed is retried by the next tick, by design; judge one that observed.
      return s.runs >= 2 && s.ticks > 4 && s.lastTick?.error === null ? s : undefined;
    },
    60_000,
    200,
  );
  expect(status.lastTick?.decision).toEqual([
    expect.objectContaining({ group: GROUP, current: 0, desired: 0, add: 0, remove: [] }),
  ]);
  const description = await handle.describe();
  expect(description.runId).not.toBe(handle.firstExecutionRunId);

  // The current details (what the Web UI shows) carry the last decision.
  const metadata = await handle.query<{ currentDetails?: string }>('__temporal_workflow_metadata');
  expect(metadata.currentDetails).toContain(`| ${GROUP} | 0 | 0 | 0 | 0 | no change |`);

  // Paused: no more ticks.
  await handle.signal('pause');
  const paused = await waitUntil('the pause', async () => {
    const s = await harness.status();
    return s.paused ? s : undefined;
  });
  const ticksWhenPaused = paused.ticks;
  // Observe a few tick intervals: a paused loop does not tick.
  for (let i = 0; i < 5; i++) {
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect((await harness.status()).ticks).toBe(ticksWhenPaused);
  }
  // The update's validator refuses a bad setting, naming it, and changes nothing.
  const refused = await handle
    .executeUpdate('configure', { args: [{ idleTimeoutMs: -5 }] })
    .catch((err: unknown) => err);
  expect(refused).toBeInstanceOf(WorkflowUpdateFailedError);
  expect(String((refused as WorkflowUpdateFailedError).cause?.message)).toMatch(
    /^invalid settings: idleTimeoutMs: /,
  );
  // A good one is applied and answered; it wakes the loop, which, paused, still does not tick.
  const settings = await handle.executeUpdate<{ idleTimeoutMs: number; cooldownMs: number }, [unknown]>(
    'configure',
    { args: [{ idleTimeoutMs: 12_345 }] },
  );
  expect(settings).toMatchObject({ idleTimeoutMs: 12_345, tickIntervalMs: 300 });
  expect(await harness.status()).toMatchObject({
    ticks: ticksWhenPaused,
    settings: { idleTimeoutMs: 12_345 },
  });

  await handle.signal('resume');
  await waitUntil('ticks to resume', async () => {
    const s = await harness.status();
    return !s.paused && s.ticks > ticksWhenPaused + 1 ? true : undefined;
  });

  await handle.signal('stop', { reason: 'test says stop' });
  const summary = (await handle.result()) as { stoppedBecause: string; ticks: number; runs: number };
  expect(summary.stoppedBecause).toBe('test says stop');
  expect(summary.runs).toBeGreaterThanOrEqual(2);
  expect(summary.ticks).toBeGreaterThan(ticksWhenPaused);
});
