/**
 * Live updates of a running pipeline (Temporal Update with validators):
 * priority, resources of a step not yet started, cancelling one step, adding
 * a step. Invalid updates are rejected by the validator and change nothing.
 */
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import {
  addStepUpdate,
  cancelStepUpdate,
  setPriorityUpdate,
  setStepResourcesUpdate,
} from '../../core/messages/pipeline';
import type { PipelineResult, StepStatus } from '../../core/schemas/pipeline-spec';
import { startTestEnv, waitUntil, type TestEnv } from '../helpers/test-env';

const ECHO = 'pantheon_tasks.testkit:echo';
const SLEEP = 'pantheon_tasks.testkit:sleep';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

function sleepSteps(prefix: string, count: number, seconds: number) {
  return Array.from({ length: count }, (_, i) => ({ id: `${prefix}${i}`, task: SLEEP, args: [seconds, i] }));
}

async function stepStatus(
  handle: WorkflowHandle,
  stepId: string,
  wanted: StepStatus[],
): Promise<PipelineResult> {
  return waitUntil(`step ${stepId} to be ${wanted.join(' or ')}`, async () => {
    const p = await env.progress(handle);
    return wanted.includes(p.steps[stepId]?.status ?? 'pending') ? p : undefined;
  });
}

/** The rejection message of an update the validator refused. */
async function rejection(update: Promise<unknown>): Promise<string> {
  const err = await update.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
  return String((err as WorkflowUpdateFailedError).cause?.message);
}

async function scheduledPriorities(handle: WorkflowHandle): Promise<Record<string, number | undefined>> {
  const history = await handle.fetchHistory();
  const byActivity: Record<string, number | undefined> = {};
  for (const e of history.events ?? []) {
    const a = e.activityTaskScheduledEventAttributes;
    if (a?.activityId?.startsWith('step:'))
      byActivity[a.activityId.slice(5)] = a.priority?.priorityKey ?? undefined;
  }
  return byActivity;
}

describe('live updates', () => {
  test('setPriority: queued steps overtake, and steps scheduled later get the new priority', async () => {
    // Fill the cluster, then queue an ordinary pipeline and a low-priority one behind it.
    // The blockers end at different times so that CPUs come free one at a time: a slot freed
    // alone goes to the best queued step, which is what shows priority (four slots freed at
    // once would start all four queued steps within milliseconds of each other, in any order).
    const blocker = await env.startPipeline({
      name: 'blocker',
      project: 'upd',
      steps: [5, 7, 9, 9].map((seconds, i) => ({ id: `block${i}`, task: SLEEP, args: [seconds, i] })),
    });
    await waitUntil('the blocker to fill the cluster', async () => {
      const p = await env.progress(blocker);
      return Object.values(p.steps).every((s) => s.status === 'running') ? true : undefined;
    });
    const ordinary = await env.startPipeline({
      name: 'ordinary',
      project: 'upd',
      priority: 3,
      steps: sleepSteps('ord', 2, 1),
    });
    const low = await env.startPipeline({
      name: 'low',
      project: 'upd',
      priority: 5,
      steps: [...sleepSteps('low', 2, 1), { id: 'later', task: ECHO, args: ['x'], dependsOn: ['low0'] }],
    });
    await stepStatus(ordinary, 'ord1', ['queued']);
    await stepStatus(low, 'low1', ['queued']);

    const changed = await low.executeUpdate(setPriorityUpdate, { args: [{ priority: 1 }] });
    expect(changed.priority).toBe(1);
    expect(changed.reprioritizedSteps.sort()).toEqual(['low0', 'low1']);

    const [lowResult, ordinaryResult] = (await Promise.all([
      low.result(),
      ordinary.result(),
      blocker.result(),
    ])) as PipelineResult[];
    const lastLowStart = Math.max(lowResult!.steps.low0!.startedAtMs!, lowResult!.steps.low1!.startedAtMs!);
    const firstOrdinaryStart = Math.min(
      ordinaryResult!.steps.ord0!.startedAtMs!,
      ordinaryResult!.steps.ord1!.startedAtMs!,
    );
    expect(lastLowStart).toBeLessThanOrEqual(firstOrdinaryStart);
    expect(lowResult!.priority).toBe(1);
    // low0/low1 were scheduled at 5 and changed in place; `later` was scheduled after the update.
    expect(await scheduledPriorities(low)).toEqual({ low0: 5, low1: 5, later: 1 });
  });

  test('setStepResources changes a step that has not started; other cases are rejected', async () => {
    const handle = await env.startPipeline({
      name: 'resources',
      project: 'upd',
      steps: [
        { id: 'gate', task: SLEEP, args: [3] },
        { id: 'heavy', task: 'pantheon_tasks.testkit:node', dependsOn: ['gate'] },
      ],
    });
    await stepStatus(handle, 'gate', ['queued', 'running']);
    expect(
      await rejection(
        handle.executeUpdate(setStepResourcesUpdate, { args: [{ stepId: 'gate', resources: { cpus: 1 } }] }),
      ),
    ).toMatch(/step "gate" is (queued|running): only a step that has not started can change resources/);
    expect(
      await rejection(
        handle.executeUpdate(setStepResourcesUpdate, {
          args: [{ stepId: 'heavy', resources: { cpus: 64 } }],
        }),
      ),
    ).toMatch(/resources: no node group can hold cpus=64/);
    expect(
      await rejection(
        handle.executeUpdate(setStepResourcesUpdate, {
          args: [{ stepId: 'heavy', resources: { cpus: -2 } }],
        }),
      ),
    ).toMatch(/resources\.cpus/);
    const changed = await handle.executeUpdate(setStepResourcesUpdate, {
      args: [{ stepId: 'heavy', resources: { cpus: 2, memoryMb: 300 } }],
    });
    expect(changed).toMatchObject({ stepId: 'heavy', group: 'cpu' });
    const result = (await handle.result()) as PipelineResult;
    expect(result.steps.heavy).toMatchObject({ status: 'succeeded', resources: { cpus: 2, memoryMb: 300 } });
  });

  test('cancelStep cancels a running step; its dependants are skipped, the rest runs on', async () => {
    const handle = await env.startPipeline({
      name: 'cancel',
      project: 'upd',
      steps: [
        { id: 'long', task: SLEEP, args: [120] },
        { id: 'after-long', task: ECHO, args: [{ $step: 'long' }] },
        { id: 'other', task: SLEEP, args: [1, 'ok'] },
        { id: 'never', task: ECHO, args: ['n'], dependsOn: ['long'] },
      ],
    });
    await stepStatus(handle, 'long', ['running']);
    expect(await handle.executeUpdate(cancelStepUpdate, { args: [{ stepId: 'never' }] })).toEqual({
      stepId: 'never',
      was: 'pending',
    });
    const cancelled = await handle.executeUpdate(cancelStepUpdate, { args: [{ stepId: 'long' }] });
    expect(cancelled).toEqual({ stepId: 'long', was: 'running' });
    expect(await rejection(handle.executeUpdate(cancelStepUpdate, { args: [{ stepId: 'nope' }] }))).toMatch(
      /unknown step "nope"/,
    );

    const result = (await handle.result()) as PipelineResult;
    expect(result.status).toBe('succeeded');
    expect(result.steps.long).toMatchObject({ status: 'cancelled', error: { type: 'Cancelled' } });
    expect(result.steps['after-long']!.status).toBe('skipped');
    expect(result.steps.never!.status).toBe('cancelled');
    expect(result.steps.other).toMatchObject({ status: 'succeeded', output: 'ok' });
    expect(result.steps.long!.finishedAtMs! - result.steps.long!.startedAtMs!).toBeLessThan(60_000);
  });

  test('addStep adds a step whose dependencies exist; invalid additions leave the pipeline untouched', async () => {
    const handle = await env.startPipeline({
      name: 'grow',
      project: 'upd',
      steps: [{ id: 'a', task: SLEEP, args: [4, { n: 41 }] }],
    });
    await stepStatus(handle, 'a', ['queued', 'running']);
    const before = await env.progress(handle);

    const invalid: Array<[unknown, RegExp]> = [
      [{ id: 'b', task: ECHO, dependsOn: ['zzz'] }, /step\.dependsOn: unknown step "zzz"/],
      [{ id: 'a', task: ECHO }, /step\.id: step "a" already exists/],
      [
        { id: 'b', task: 'os:system', args: ['true'] },
        /step\.task: task 'os:system' is outside the allowed modules/,
      ],
      [{ id: 'b', agent: 'nobody' }, /step\.agent: unknown agent "nobody"/],
      [{ id: 'b b', task: ECHO }, /step\.id: letters, digits/],
    ];
    for (const [step, message] of invalid)
      expect(
        await rejection(handle.executeUpdate(addStepUpdate, { args: [{ step: step as never }] })),
      ).toMatch(message);
    const untouched = await env.progress(handle);
    expect(untouched.stepOrder).toEqual(before.stepOrder);

    const added = await handle.executeUpdate(addStepUpdate, {
      args: [{ step: { id: 'b', task: ECHO, args: [{ $step: 'a', path: 'n' }] } }],
    });
    expect(added).toEqual({ stepId: 'b', dependsOn: ['a'] });
    const result = (await handle.result()) as PipelineResult;
    expect(result.stepOrder).toEqual(['a', 'b']);
    expect(result.steps.b).toMatchObject({ status: 'succeeded', output: 41 });
  });

  test('updates to a finished pipeline are rejected', async () => {
    const handle = await env.startPipeline({
      name: 'done',
      project: 'upd',
      steps: [{ id: 'a', task: ECHO, args: [1] }],
    });
    await handle.result();
    const err = await handle
      .executeUpdate(setPriorityUpdate, { args: [{ priority: 2 }] })
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
  });
});
