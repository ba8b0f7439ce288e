/**
 * A corpus of bad pipeline specs and bad updates, on the real stack. Each
 * spec's workflow closes at once, non-retryably, with the offending field
 * named, and nothing reaches Ray (no step activity is ever scheduled); each
 * bad update is refused by its validator, naming the field, and leaves the
 * running pipeline as it was. None of them leaves a workflow in a
 * workflow-task failure loop.
 */
import { WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import {
  addStepUpdate,
  cancelStepUpdate,
  setPriorityUpdate,
  setStepResourcesUpdate,
} from '../../core/messages/pipeline';
import { startTestEnv, type TestEnv } from '../helpers/test-env';
import { failureCause } from '../helpers/workflow-failure';

const ECHO = 'pantheon_tasks.testkit:echo';
const SLEEP = 'pantheon_tasks.testkit:sleep';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

const base = (steps: unknown[], extra: Record<string, unknown> = {}) => ({
  name: 'bad-input',
  project: 'drills',
  ...extra,
  steps,
});
const step = (fields: Record<string, unknown>) => ({ id: 'a', task: ECHO, args: [1], ...fields });
/** JSON with a `__proto__` key, as a client would send it (an object literal cannot hold one). */
const withProtoKey = (json: string) => JSON.parse(json) as unknown;
const nested = (depth: number): unknown => {
  let value: unknown = 'leaf';
  for (let i = 0; i < depth; i++) value = [value];
  return value;
};

const badSpecs: Array<[string, unknown, RegExp]> = [
  ['a step id every object has', base([step({ id: 'constructor' })]), /steps\[0\]\.id: is a name every/],
  ['another one', base([step({ id: 'toString' })]), /steps\[0\]\.id/],
  [
    'a $step that is not a string',
    base([step({ args: [{ $step: 5 }] })]),
    /steps\[0\]\.args\[0\]: a step reference names/,
  ],
  [
    'a $step path that is not a string',
    base([step({ id: 'b' }), step({ args: [{ $step: 'b', path: 7 }] })]),
    /steps\[1\]\.args\[0\]: a step reference's "path"/,
  ],
  [
    'a $step with other keys',
    base([step({ id: 'b' }), step({ args: [{ $step: 'b', extra: 1 }] })]),
    /steps\[1\]\.args\[0\]: a step reference has only/,
  ],
  [
    'a thousand levels of nesting',
    base([step({ args: [nested(1000)] })]),
    /steps\[0\]\.args\[0\](\[0\])*: nests deeper than/,
  ],
  [
    'a __proto__ key in kwargs',
    base([step({ kwargs: withProtoKey('{"__proto__": {"x": 1}}') })]),
    /steps\[0\]\.kwargs\.__proto__: an object key/,
  ],
  [
    'a __proto__ key deep in args',
    base([step({ args: [withProtoKey('{"a": {"__proto__": 1}}')] })]),
    /steps\[0\]\.args\[0\]\.a\.__proto__/,
  ],
  [
    'a dunder kwarg',
    base([step({ kwargs: { __class__: 1 } })]),
    /steps\[0\]\.kwargs.*__class__|steps\[0\]\.kwargs: /,
  ],
  [
    'inverted retry intervals',
    base([step({ retry: { initialIntervalMs: 60_000, maximumIntervalMs: 1_000 } })]),
    /steps\[0\]\.retry\.maximumIntervalMs: must not be below/,
  ],
  ['an absurd timeout', base([step({ timeoutSeconds: 1e12 })]), /steps\[0\]\.timeoutSeconds/],
  ['a zero timeout', base([step({ timeoutSeconds: 0 })]), /steps\[0\]\.timeoutSeconds/],
  [
    'a million attempts',
    base([step({ retry: { maximumAttempts: 1_000_000 } })]),
    /steps\[0\]\.retry\.maximumAttempts/,
  ],
  [
    'a backoff below one',
    base([step({ retry: { backoffCoefficient: 0.5 } })]),
    /steps\[0\]\.retry\.backoffCoefficient/,
  ],
  [
    'a Ray label',
    base([step({ resources: { labels: { 'ray.io/zone': 'a' } } })]),
    /steps\[0\]\.resources\.labels\.ray\.io\/zone: labels under ray\.io\//,
  ],
  [
    'a label no group has',
    base([step({ resources: { labels: { zone: 'mars' } } })]),
    /steps\[0\]\.resources: no node group has label zone=mars/,
  ],
  [
    'a custom resource no group has',
    base([step({ resources: { custom: { tpu: 1 } } })]),
    /steps\[0\]\.resources: no node group can hold custom tpu=1/,
  ],
  [
    '64 GPUs',
    base([step({ resources: { gpus: 64 } })]),
    /steps\[0\]\.resources: no node group can hold gpus=64/,
  ],
  [
    'a pipeline name with a control character',
    base([step({})], { name: 'bad\tname' }),
    /^invalid pipeline spec: name: must not contain control characters/,
  ],
  [
    'a pipeline name with outer spaces',
    base([step({})], { name: ' padded ' }),
    /name: must not start or end with whitespace/,
  ],
  [
    'a step input over the limit',
    base([step({ args: ['x'.repeat(300_000)] })]),
    /steps\[0\]\.args: args and kwargs take \d+ bytes/,
  ],
  [
    'a spec over the limit',
    base(Array.from({ length: 8 }, (_, i) => step({ id: `s${i}`, args: ['x'.repeat(200_000)] }))),
    /\(input\): takes \d+ bytes as JSON/,
  ],
  [
    'an unknown dependency',
    base([step({}), step({ id: 'b', dependsOn: ['x'] })]),
    /steps\[1\]\.dependsOn\[0\]: unknown step "x"/,
  ],
  [
    'a dependency cycle',
    base([step({ dependsOn: ['b'] }), step({ id: 'b', dependsOn: ['a'] })]),
    /dependency cycle: /,
  ],
  [
    'a step that depends on itself',
    base([step({ dependsOn: ['a'] })]),
    /steps\[0\]\.dependsOn\[0\]: step "a" depends on itself/,
  ],
  ['duplicate ids', base([step({}), step({})]), /steps\[1\]\.id: duplicate step id "a"/],
  [
    'a task outside the allowlist',
    base([step({ task: 'os:system' })]),
    /steps\[0\]\.task: task 'os:system' is outside the allowed modules/,
  ],
  ['an unknown agent', base([{ id: 'a', agent: 'nobody' }]), /steps\[0\]\.agent: unknown agent "nobody"/],
  [
    'an agent name of the wrong shape',
    base([{ id: 'a', agent: 'Not An Agent' }]),
    /steps\[0\]\.agent: an agent name/,
  ],
  ['priority out of range', base([step({})], { priority: 0 }), /priority: /],
  ['an unknown failure policy', base([step({})], { failurePolicy: 'sometimes' }), /failurePolicy: /],
  [
    'an exception type that is not a name',
    base([step({ nonRetryableErrors: ['not a type!'] })]),
    /steps\[0\]\.nonRetryableErrors\[0\]: an exception type name/,
  ],
  [
    'a custom resource named __proto__',
    base([step({ resources: withProtoKey('{"custom": {"__proto__": 1}}') })]),
    /steps\[0\]\.resources\.custom\.__proto__/,
  ],
  ['a window of zero', base([step({})], { maxInFlightSteps: 0 }), /maxInFlightSteps: /],
  [
    'more steps than one history holds, with continuing as new turned off',
    base(
      Array.from({ length: 6_001 }, (_, i) => ({ id: `s${i}`, task: ECHO })),
      { continueAsNewAfterSteps: 0 },
    ),
    /continueAsNewAfterSteps: 0 keeps the pipeline in one history, which holds at most 6000 steps; this one has 6001/,
  ],
];

async function stepActivities(handle: WorkflowHandle): Promise<string[]> {
  const history = await handle.fetchHistory();
  return (history.events ?? [])
    .map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
    .filter((name): name is string => name === 'runRayTask' || name === 'runRayJob');
}

describe('bad specs close the workflow at once, naming the field, and reach nothing', () => {
  test.each(badSpecs)('%s', async (_label, spec, field) => {
    const handle = await env.startPipeline(spec);
    const cause = await failureCause(handle);
    expect(cause.type).toBe('InvalidPipelineSpec');
    expect(cause.nonRetryable).toBe(true);
    expect(cause.message).toMatch(field);
    expect(await stepActivities(handle)).toEqual([]);
    // Closed by its first workflow task: no task failure, no retry loop.
    const history = await handle.fetchHistory();
    expect((history.events ?? []).filter((e) => e.workflowTaskFailedEventAttributes)).toEqual([]);
  });
});

describe('bad updates are refused by their validators, naming the field', () => {
  let handle: WorkflowHandle;
  beforeAll(async () => {
    handle = await env.startPipeline(
      base([
        { id: 'long', task: SLEEP, args: [60, 'done'] },
        { id: 'later', task: ECHO, args: [{ $step: 'long' }] },
      ]),
    );
    await env.progress(handle); // the workflow has run its first task
  });
  afterAll(async () => {
    await handle?.cancel().catch(() => undefined);
  });

  const badUpdates: Array<[string, () => Promise<unknown>, RegExp]> = [
    [
      'addStep with a prototype-member id',
      () => handle.executeUpdate(addStepUpdate, { args: [{ step: step({ id: 'constructor' }) }] }),
      /step\.id: is a name every/,
    ],
    [
      'addStep with a $step of the wrong shape',
      () =>
        handle.executeUpdate(addStepUpdate, { args: [{ step: step({ id: 'n1', args: [{ $step: 1 }] }) }] }),
      /step\.args\[0\]: a step reference names/,
    ],
    [
      'addStep depending on an unknown step',
      () =>
        handle.executeUpdate(addStepUpdate, { args: [{ step: step({ id: 'n2', dependsOn: ['ghost'] }) }] }),
      /step\.dependsOn: unknown step "ghost"/,
    ],
    [
      'addStep with a Ray label',
      () =>
        handle.executeUpdate(addStepUpdate, {
          args: [{ step: step({ id: 'n3', resources: { labels: { 'ray.io/x': 'y' } } }) }],
        }),
      /step\.resources\.labels\.ray\.io\/x/,
    ],
    [
      'addStep with inverted retry intervals',
      () =>
        handle.executeUpdate(addStepUpdate, {
          args: [{ step: step({ id: 'n4', retry: { initialIntervalMs: 10, maximumIntervalMs: 1 } }) }],
        }),
      /step\.retry\.maximumIntervalMs/,
    ],
    [
      'addStep with a __proto__ kwarg',
      () =>
        handle.executeUpdate(addStepUpdate, {
          args: [
            withProtoKey(`{"step": {"id": "n5", "task": "${ECHO}", "kwargs": {"__proto__": 1}}}`) as never,
          ],
        }),
      /step\.kwargs\.__proto__/,
    ],
    [
      'addStep nested a thousand deep',
      () =>
        handle.executeUpdate(addStepUpdate, { args: [{ step: step({ id: 'n6', args: [nested(1000)] }) }] }),
      /nests deeper than/,
    ],
    [
      'addStep outside the allowlist',
      () => handle.executeUpdate(addStepUpdate, { args: [{ step: step({ id: 'n7', task: 'os:system' }) }] }),
      /step\.task: task 'os:system'/,
    ],
    [
      'setStepResources of an unknown step',
      () =>
        handle.executeUpdate(setStepResourcesUpdate, { args: [{ stepId: 'ghost', resources: { cpus: 1 } }] }),
      /stepId: unknown step "ghost"/,
    ],
    [
      'setStepResources no group can hold',
      () =>
        handle.executeUpdate(setStepResourcesUpdate, {
          args: [{ stepId: 'later', resources: { gpus: 64 } }],
        }),
      /resources: no node group can hold gpus=64/,
    ],
    [
      'cancelStep of a prototype-member name',
      () => handle.executeUpdate(cancelStepUpdate, { args: [{ stepId: 'constructor' }] }),
      /stepId: is a name every/,
    ],
    [
      'setPriority out of range',
      () => handle.executeUpdate(setPriorityUpdate, { args: [{ priority: 9 }] }),
      /priority: /,
    ],
  ];

  test.each(badUpdates)('%s', async (_label, send, field) => {
    const err = await send().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
    expect(String((err as WorkflowUpdateFailedError).cause?.message)).toMatch(field);
    const progress = await env.progress(handle);
    expect(progress.status).toBe('running');
    expect(progress.stepOrder).toEqual(['long', 'later']);
    expect(await stepActivities(handle)).toEqual(['runRayTask']);
  });
});
