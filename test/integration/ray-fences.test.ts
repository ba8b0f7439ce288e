/**
 * The Ray side's fences, on the real stack: task references are checked per
 * function by the dispatcher from its own allowlist (called directly, as an
 * attacker holding the bridge would, and through a pipeline); outputs that are
 * not strict JSON fail at once; an attempt that asks for different work under
 * a key is refused; finished entries stay while their workflow is open and go
 * once it has closed. What reached Ray is checked through Ray's state API.
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { listRayTasksNamed } from '../../stack/ray-cluster-state';
import { sweepDispatcherRetention } from '../../activities/ray/dispatcher-retention';
import { stepKey } from '../../activities/ray/task-step';
import { workflowClosedCheck } from '../../activities/ray/workflow-liveness';
import { startTestEnv, uniqueId, waitUntil, type TestEnv } from '../helpers/test-env';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

interface Refusal {
  refused?: { type: string; field: string; message: string };
}

/** A submit straight to the dispatcher, with a caller-sent allowlist that the Ray side must ignore. */
function submitDirectly(key: string, task: string, args: unknown[], extra: Record<string, unknown> = {}) {
  return env.worker!.bridge.call<Refusal & { generation?: number; attached?: boolean }>('submit', {
    key,
    run: 'direct-run',
    attempt: 1,
    task,
    args,
    kwargs: {},
    options: { num_cpus: 0.1 },
    limits: {
      allowed_packages: ['os', 'builtins', 'pantheon_tasks'],
      max_result_bytes: 1024,
      memory_guard: 'off',
    },
    ...extra,
  });
}

/** The step activity's own failures, from the workflow's history: type, non-retryable, how many. */
async function activityFailures(handle: WorkflowHandle) {
  const events = (await handle.fetchHistory()).events ?? [];
  return events
    .map((e) => e.activityTaskFailedEventAttributes?.failure?.applicationFailureInfo)
    .filter((info) => info !== undefined && info !== null)
    .map((info) => ({ type: info.type, nonRetryable: info.nonRetryable ?? false }));
}

async function stepFailure(step: Record<string, unknown>) {
  const workflowId = uniqueId('fence');
  const started = Date.now();
  const handle = await env.startPipeline(
    { name: 'fences', project: 'drills', steps: [{ id: 's', ...step }] },
    workflowId,
  );
  const err = await handle.result().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as {
    message: string;
    type?: string;
    nonRetryable?: boolean;
  };
  return { cause, ms: Date.now() - started, key: stepKey(workflowId, 's'), handle };
}

describe('the Ray side refuses, from its own allowlist, whatever the caller sends', () => {
  test.each([
    ['a module dunder', 'pantheon_tasks.testkit:__setattr__', /public names/],
    ['a module dunder', 'pantheon_tasks.testkit:__delattr__', /public names/],
    ['a private helper', 'pantheon_tasks.examples:_words', /public names/],
    [
      'a module the task module imported',
      'pantheon_tasks.testkit:os',
      /not a function defined in pantheon_tasks\.testkit/,
    ],
    [
      'a name the task module imported',
      'pantheon_tasks.examples:Optional',
      /not a function defined in pantheon_tasks\.examples/,
    ],
    ['a module outside the allowlist', 'os:system', /outside the allowed modules/],
    ['the runtime itself', 'pantheon_runtime.runner:run_step', /outside the allowed modules/],
  ])(
    '%s (%s): refused at submission, naming the field, and nothing reaches Ray',
    async (_what, task, reason) => {
      const key = stepKey(uniqueId('direct'), 's');
      const answer = await submitDirectly(key, task, ['id']);
      expect(answer.refused).toMatchObject({ type: 'TaskRefRefused', field: 'task' });
      expect(answer.refused!.message).toMatch(/^task: /);
      expect(answer.refused!.message).toMatch(reason);
      expect(await env.worker!.bridge.call('status', { key })).toBeNull();
      expect(await listRayTasksNamed(env.config.ray.dashboardUrl, key)).toEqual([]);
    },
  );

  test("an agent step's own task is checked too (kwargs.task)", async () => {
    const key = stepKey(uniqueId('direct'), 's');
    const answer = await submitDirectly(key, 'pantheon_tasks.agent_host:run_agent', [], {
      kwargs: { agent: 'x', task: 'pantheon_tasks.testkit:os', args: [], kwargs: {} },
    });
    expect(answer.refused).toMatchObject({ type: 'TaskRefRefused', field: 'kwargs.task' });
  });

  test('the dispatcher reports the allowlist it enforces', async () => {
    const info = await env.worker!.dispatcher.info();
    expect(info.allowlist).toEqual(['pantheon_tasks.examples', 'pantheon_tasks.testkit']);
  });
});

describe('task references through a pipeline', () => {
  test('a dunder is refused by the worker before anything is scheduled', async () => {
    const { cause, key } = await stepFailure({ task: 'pantheon_tasks.testkit:__setattr__', args: ['x', 1] });
    expect(cause.type).toBe('InvalidPipelineSpec');
    expect(cause.message).toMatch(/steps\[0\]\.task: .*public names/);
    expect(await listRayTasksNamed(env.config.ray.dashboardUrl, key)).toEqual([]);
  });

  test('an imported name passes the worker (it cannot import Python) and is refused by the Ray side, non-retryably', async () => {
    const { cause, key, ms, handle } = await stepFailure({ task: 'pantheon_tasks.testkit:os', args: [] });
    expect(await activityFailures(handle)).toEqual([{ type: 'TaskRefRefused', nonRetryable: true }]);
    expect(cause.message).toMatch(
      /task: 'pantheon_tasks\.testkit:os' is not a function defined in pantheon_tasks\.testkit/,
    );
    expect(ms).toBeLessThan(30_000);
    expect(await listRayTasksNamed(env.config.ray.dashboardUrl, key)).toEqual([]);
  });
});

describe('outputs are strict JSON or a clear error', () => {
  test.each([
    ['nan', /output\.score is nan/],
    ['inf', /output\.score is inf/],
    ['cycle', /output\.loop\[0\] refers back .*cycle/],
    ['set', /output\.tags is a builtins\.set/],
  ])('%s: the step fails at once, non-retryably, naming the place', async (kind, place) => {
    const { cause, ms, handle } = await stepFailure({
      task: 'pantheon_tasks.testkit:bad_output',
      args: [kind],
      timeoutSeconds: 300,
    });
    expect(cause.message).toMatch(
      /StepOutputRejected: output of pantheon_tasks\.testkit:bad_output is not strict JSON/,
    );
    expect(cause.message).toMatch(place);
    expect(await activityFailures(handle)).toEqual([
      { type: 'pantheon_runtime.runner.StepOutputRejected', nonRetryable: true },
    ]);
    // Far below the step's 300 s timeout: the failure is the answer, not a wait.
    expect(ms).toBeLessThan(30_000);
  });
});

describe('attach only to the same work', () => {
  test('an attempt asking for different work under a busy key gets a conflict, non-retryably', async () => {
    const workflowId = uniqueId('conflict');
    const key = stepKey(workflowId, 's');
    // Other work holds the key (a different run, still running) when the pipeline's step asks for it.
    const holder = await submitDirectly(key, 'pantheon_tasks.testkit:sleep', [60]);
    expect(holder.refused).toBeUndefined();
    // Ray's state API lists a task about a second after it starts: see it before the pipeline asks.
    await waitUntil('the holder task listed by Ray', async () =>
      (await listRayTasksNamed(env.config.ray.dashboardUrl, key)).length === 1 ? true : undefined,
    );
    try {
      const handle = await env.startPipeline(
        {
          name: 'conflict',
          project: 'drills',
          steps: [{ id: 's', task: 'pantheon_tasks.testkit:echo', args: ['mine'] }],
        },
        workflowId,
      );
      const err = await handle.result().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(WorkflowFailedError);
      expect(String((err as WorkflowFailedError).cause?.message)).toMatch(
        /StepKeyConflict: step key .* holds different work \(task pantheon_tasks\.testkit:sleep/,
      );
      expect(await activityFailures(handle)).toEqual([{ type: 'StepKeyConflict', nonRetryable: true }]);
      // The holder's task is untouched: still the only task under the key.
      expect((await listRayTasksNamed(env.config.ray.dashboardUrl, key)).length).toBe(1);
    } finally {
      await env.worker!.bridge.call('cancel', { key, force: true });
    }
  });

  test('the same work attaches', async () => {
    const key = stepKey(uniqueId('same'), 's');
    expect(await submitDirectly(key, 'pantheon_tasks.testkit:echo', ['a'])).toMatchObject({
      attached: false,
    });
    expect(await submitDirectly(key, 'pantheon_tasks.testkit:echo', ['a'])).toMatchObject({ attached: true });
    expect((await submitDirectly(key, 'pantheon_tasks.testkit:echo', ['b'])).refused?.type).toBe(
      'StepKeyConflict',
    );
  });
});

describe('finished entries live as long as their workflow', () => {
  test('entries of an open workflow are kept, those of a closed one released', async () => {
    const closed = await env.startPipeline({
      name: 'retention',
      project: 'drills',
      steps: [{ id: 'a', task: 'pantheon_tasks.testkit:echo', args: [1] }],
    });
    await closed.result();
    const open = await env.startPipeline({
      name: 'retention',
      project: 'drills',
      steps: [
        { id: 'a', task: 'pantheon_tasks.testkit:echo', args: [1] },
        { id: 'b', task: 'pantheon_tasks.testkit:sleep', args: [60], dependsOn: ['a'] },
      ],
    });
    const bridge = env.worker!.bridge;
    const openKey = stepKey(open.workflowId, 'a');
    await waitUntil(`${openKey} to finish`, async () =>
      (await bridge.call<{ state: string } | null>('status', { key: openKey }))?.state === 'succeeded'
        ? true
        : undefined,
    );
    try {
      const swept = await sweepDispatcherRetention(
        env.worker!.dispatcher,
        workflowClosedCheck(env.client),
        { minAgeS: 0 },
        env.logger,
      );
      expect(swept.released).toBeGreaterThanOrEqual(1);
      expect(await bridge.call('status', { key: stepKey(closed.workflowId, 'a') })).toBeNull();
      expect(await bridge.call('status', { key: openKey })).toMatchObject({ state: 'succeeded' });
    } finally {
      // Cancelling the workflow stops b's Ray task; wait for that, or its CPU stays taken for the next file.
      await open.cancel();
      const sleeperKey = stepKey(open.workflowId, 'b');
      await waitUntil(`${sleeperKey} to stop`, async () => {
        const entry = await bridge.call<{ state: string } | null>('status', { key: sleeperKey });
        return entry === null || !['pending', 'running'].includes(entry.state) ? true : undefined;
      });
    }
  });
});
