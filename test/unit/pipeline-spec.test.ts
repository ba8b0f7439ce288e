import fc from 'fast-check';
import {
  dependenciesOf,
  findCycle,
  parsePipelineSpec,
  readySteps,
  blockedSteps,
  resolveStepRefs,
} from '../../core/dag';
import {
  boundedResult,
  MAX_RESULT_BYTES,
  pipelineSpecSchema,
  stepSpecSchema,
  type PipelineResult,
  type StepResult,
  type StepSpec,
} from '../../core/schemas/pipeline-spec';
import { AGENT_HOST_TASK } from '../../core/agent-host';
import { mapCallOf } from '../../core/schemas/map-step';
import { defaultAllowedTaskModules, refuseTaskRef } from '../../core/schemas/task-ref';

const ECHO = 'pantheon_tasks.testkit:echo';
const valid = {
  name: 'demo',
  project: 'acme',
  priority: 3,
  steps: [
    { id: 'a', task: ECHO, args: ['hi'], resources: { cpus: 1, memoryMb: 100 } },
    { id: 'b', task: ECHO, args: [{ $step: 'a' }], dependsOn: ['a'] },
  ],
};

function issuesOf(raw: unknown): string {
  const parsed = parsePipelineSpec(raw);
  if (parsed.ok) throw new Error('expected the spec to be refused');
  return parsed.issues.map((i) => `${i.path}: ${i.message}`).join('\n');
}

describe('pipeline spec validation', () => {
  test('the documented example is valid and gets defaults', () => {
    const parsed = parsePipelineSpec(valid);
    expect(parsed.ok).toBe(true);
    if (parsed.ok) {
      expect(parsed.spec.failurePolicy).toBe('failFast');
      expect(parsed.spec.steps[0]?.kwargs).toEqual({});
    }
  });

  test.each([
    ['missing name', { ...valid, name: undefined }, /^name: /m],
    ['missing project', { ...valid, project: undefined }, /^project: /m],
    ['missing steps', { name: 'x', project: 'acme' }, /^steps: /m],
    ['empty steps', { ...valid, steps: [] }, /^steps: /m],
    ['priority out of range', { ...valid, priority: 9 }, /^priority: /m],
    [
      'a step with neither task nor job nor agent',
      { ...valid, steps: [{ id: 'a' }] },
      /^steps\[0\]\.task: a step names exactly one/m,
    ],
    [
      'a malformed task reference',
      { ...valid, steps: [{ id: 'a', task: 'not a ref' }] },
      /^steps\[0\]\.task: /m,
    ],
    [
      'negative cpus',
      { ...valid, steps: [{ id: 'a', task: ECHO, resources: { cpus: -1 } }] },
      /^steps\[0\]\.resources\.cpus: /m,
    ],
    [
      'negative memory',
      { ...valid, steps: [{ id: 'a', task: ECHO, resources: { memoryMb: -5 } }] },
      /^steps\[0\]\.resources\.memoryMb: /m,
    ],
    [
      'negative custom resource',
      { ...valid, steps: [{ id: 'a', task: ECHO, resources: { custom: { tpu: -1 } } }] },
      /^steps\[0\]\.resources\.custom\.tpu: /m,
    ],
    [
      'an unknown field',
      { ...valid, steps: [{ id: 'a', task: ECHO, colour: 'red' }] },
      /^steps\[0\]: .*colour/m,
    ],
    [
      'duplicate step ids',
      {
        ...valid,
        steps: [
          { id: 'a', task: ECHO },
          { id: 'a', task: ECHO },
        ],
      },
      /^steps\[1\]\.id: duplicate step id "a"/m,
    ],
    [
      'unknown dependsOn',
      { ...valid, steps: [{ id: 'a', task: ECHO, dependsOn: ['zz'] }] },
      /^steps\[0\]\.dependsOn\[0\]: unknown step "zz"/m,
    ],
    [
      'unknown $step reference',
      { ...valid, steps: [{ id: 'a', task: ECHO, args: [{ x: { $step: 'ghost' } }] }] },
      /^steps\[0\]\.args\[0\]\.x: unknown step "ghost"/m,
    ],
    [
      'a cycle',
      {
        ...valid,
        steps: [
          { id: 'a', task: ECHO, dependsOn: ['c'] },
          { id: 'b', task: ECHO, dependsOn: ['a'] },
          { id: 'c', task: ECHO, dependsOn: ['b'] },
        ],
      },
      /^steps\[0\]\.dependsOn: dependency cycle: a -> c -> b -> a/m,
    ],
    [
      'a self-dependency',
      { ...valid, steps: [{ id: 'a', task: ECHO, dependsOn: ['a'] }] },
      /^steps\[0\]\.dependsOn\[0\]: step "a" depends on itself/m,
    ],
  ])('refuses %s and names the field', (_name, raw, expected) => {
    expect(issuesOf(raw)).toMatch(expected);
  });

  test('a non-object input is refused', () => {
    expect(issuesOf('hello')).toMatch(/^\(input\): /);
  });
});

describe('task references', () => {
  test('only allowed modules pass', () => {
    expect(refuseTaskRef(ECHO, ['pantheon_tasks'])).toBeUndefined();
    expect(refuseTaskRef(ECHO, ['pantheon_tasks.testkit'])).toBeUndefined();
    expect(refuseTaskRef(ECHO, ['pantheon_tasks.examples'])).toMatch(/outside the allowed modules/);
    expect(refuseTaskRef('pantheon_tasks_evil.x:y', ['pantheon_tasks'])).toMatch(
      /outside the allowed modules/,
    );
    expect(refuseTaskRef('os:system', ['pantheon_tasks'])).toMatch(/outside the allowed modules/);
    expect(refuseTaskRef('os.system', ['pantheon_tasks'])).toMatch(/not of the form/);
  });

  test('dunders and private names or modules are refused by their form, whatever the allowlist', () => {
    for (const ref of [
      'pantheon_tasks.testkit:__setattr__',
      'pantheon_tasks.testkit:__delattr__',
      'pantheon_tasks.examples:_words',
      'pantheon_tasks._private:run',
      'pantheon_tasks.__init__:echo',
      '_pantheon.tasks:run',
    ]) {
      expect(refuseTaskRef(ref, ['pantheon_tasks', '_pantheon'])).toMatch(/public names/);
      expect(stepSpecSchema.safeParse({ id: 's', task: ref }).success).toBe(false);
    }
  });

  test("the agent host passes whatever the allowlist (planning refuses it as a step's own task)", () => {
    expect(refuseTaskRef(AGENT_HOST_TASK, ['mypkg'])).toBeUndefined();
  });

  test('the test kit is on the default allowlist of a local worker only', () => {
    expect(refuseTaskRef(ECHO, defaultAllowedTaskModules(true))).toBeUndefined();
    expect(refuseTaskRef(ECHO, defaultAllowedTaskModules(false))).toMatch(/outside the allowed modules/);
    expect(
      refuseTaskRef('pantheon_tasks.examples:analyze', defaultAllowedTaskModules(false)),
    ).toBeUndefined();
  });
});

describe('DAG planning', () => {
  const step = (id: string, dependsOn: string[] = [], args: unknown[] = []): StepSpec =>
    pipelineSpecSchema.shape.steps.element.parse({ id, task: ECHO, dependsOn, args });

  test('$step references are dependencies', () => {
    expect(dependenciesOf(step('b', ['x'], [{ $step: 'a' }, [{ $step: 'c', path: 'y' }]])).sort()).toEqual([
      'a',
      'c',
      'x',
    ]);
  });

  test('ready and blocked steps follow their dependencies', () => {
    const steps = [step('a'), step('b', ['a']), step('c', ['b']), step('d')];
    expect(
      readySteps(steps, { a: 'pending', b: 'pending', c: 'pending', d: 'pending' }).map((s) => s.id),
    ).toEqual(['a', 'd']);
    expect(
      readySteps(steps, { a: 'succeeded', b: 'pending', c: 'pending', d: 'running' }).map((s) => s.id),
    ).toEqual(['b']);
    expect(
      blockedSteps(steps, { a: 'failed', b: 'pending', c: 'pending', d: 'pending' }).map((s) => s.id),
    ).toEqual(['b']);
  });

  test('references resolve to outputs, with a path', () => {
    const outputs = { a: { text: 'hi', n: [1, 2] }, b: 7 };
    expect(resolveStepRefs({ x: [{ $step: 'a', path: 'text' }, { $step: 'b' }], y: 1 }, outputs)).toEqual({
      x: ['hi', 7],
      y: 1,
    });
  });

  test('an output kept in the blob store passes on as its reference, a path riding along for the Ray side', () => {
    const ref = { $blob: `sha256:${'a'.repeat(64)}`, bytes: 3_000_000, preview: '{"rows": [' };
    expect(resolveStepRefs([{ $step: 'big' }, { $step: 'big', path: 'rows' }], { big: ref })).toEqual([
      ref,
      { ...ref, path: 'rows' },
    ]);
    // Something that only looks like a reference is an ordinary output: the path is applied here.
    const lookalike = { $blob: 'not-a-digest', bytes: 1, preview: '', rows: [1] };
    expect(resolveStepRefs({ $step: 'big', path: 'rows' }, { big: lookalike })).toEqual([1]);
  });

  test('property: a chain in any order has no cycle; closing it makes one', () => {
    fc.assert(
      fc.property(fc.integer({ min: 2, max: 30 }), fc.integer(), (n, seed) => {
        const ids = Array.from({ length: n }, (_, i) => `s${i}`);
        const chain = ids.map((id, i) => step(id, i === 0 ? [] : [ids[i - 1]!]));
        const shuffled = [...chain].sort(
          (x, y) => ((x.id.length * 31 + seed) % 7) - ((y.id.length * 31 + seed) % 7),
        );
        expect(findCycle(shuffled)).toBeUndefined();
        const closed = chain.map((s, i) => (i === 0 ? step(s.id, [ids[n - 1]!]) : s));
        const cycle = findCycle(closed);
        expect(cycle).toBeDefined();
        expect(new Set(cycle).size).toBe(n);
      }),
    );
  });
});

describe('boundedResult: a result always fits a Temporal payload', () => {
  const usage = (steps: number): PipelineResult['usage'] => ({
    steps: Object.fromEntries(
      Array.from({ length: steps }, (_, i) => [
        `s${i}`,
        {
          cpuSeconds: 1,
          cpuSecondsMeasured: false,
          attempts: 1,
          temporalQueueMs: 1,
          rayQueueMs: 1,
          runningMs: 1,
        },
      ]),
    ),
    agents: {},
    totals: { steps, attempts: steps, cpuSeconds: 0, runningMs: 0, temporalQueueMs: 0, rayQueueMs: 0 },
  });
  const result = (
    outputBytes: number,
    steps: number,
    step: (i: number) => Partial<StepResult> = () => ({}),
    id: (i: number) => string = (i) => `s${i}`,
  ): PipelineResult => ({
    name: 'big',
    project: 'acme',
    priority: 3,
    status: 'succeeded',
    stepOrder: Array.from({ length: steps }, (_, i) => id(i)),
    steps: Object.fromEntries(
      Array.from({ length: steps }, (_, i) => [
        id(i),
        { status: 'succeeded' as const, attempts: 1, output: 'x'.repeat(outputBytes), ...step(i) },
      ]),
    ),
    output: 'y'.repeat(outputBytes),
    usage: usage(steps),
  });
  const fits = (r: PipelineResult) => expect(JSON.stringify(r).length).toBeLessThanOrEqual(MAX_RESULT_BYTES);
  const detailed = (i: number): Partial<StepResult> => ({
    nodes: ['n'.repeat(56), 'm'.repeat(56)],
    tries: [{ attempt: 1, outcome: 'succeeded', node: 'n'.repeat(56), memoryMb: 512 }],
    resources: { cpus: 1, memoryMb: 512 },
    scheduledAtMs: 1e12 + i,
    startedAtMs: 1e12 + i,
    finishedAtMs: 1e12 + i,
  });
  const longId = (i: number) => `${'step-'.repeat(24)}${String(i).padStart(6, '0')}`;

  test('a small result is returned whole', () => {
    const small = result(10, 3);
    expect(boundedResult(small)).toBe(small);
  });

  test('16 outputs of 150 KB: the outputs are left out, every step and status kept, and it says so', () => {
    const bounded = boundedResult(result(150_000, 16));
    fits(bounded);
    expect(Object.keys(bounded.steps)).toHaveLength(16);
    expect(bounded.steps.s0).toEqual({ status: 'succeeded', attempts: 1 });
    expect(bounded.omitted).toMatch(/^step outputs: the whole result takes \d+ bytes/);
    expect(bounded.output).toBe('y'.repeat(150_000));
    expect(bounded.usage.steps.s0).toBeDefined();
  });

  test('a pipeline output too large on its own is left out too', () => {
    const bounded = boundedResult(result(1_600_000, 1));
    fits(bounded);
    expect(bounded.output).toBeUndefined();
    expect(bounded.omitted).toMatch(/^step outputs and the pipeline's own output/);
  });

  test('6,000 detailed step records: compact records of every step, no per-step usage', () => {
    const bounded = boundedResult(result(8, 6_000, detailed));
    fits(bounded);
    expect(bounded.stepOrder).toHaveLength(6_000);
    expect(bounded.steps.s5999).toEqual({ status: 'succeeded', attempts: 1 });
    expect(bounded.usage.steps).toEqual({});
    expect(bounded.usage.totals.steps).toBe(6_000);
    expect(bounded.omitted).toMatch(/^outputs, step details \(compact records kept\)/);
    expect(bounded.stepCounts).toBeUndefined();
  });

  test('6,000 steps with the longest ids: only the failed steps keep a record', () => {
    const failEvery100 = (i: number): Partial<StepResult> =>
      i % 100 === 0
        ? { status: 'failed', error: { type: 'Boom', message: 'e'.repeat(5_000) } }
        : { status: 'succeeded' };
    const bounded = boundedResult(result(8, 6_000, failEvery100, longId));
    fits(bounded);
    expect(bounded.stepCounts).toEqual({ succeeded: 5_940, failed: 60 });
    expect(bounded.stepOrder).toHaveLength(60);
    expect(bounded.stepOrder[1]).toBe(longId(100));
    expect(bounded.steps[longId(100)]!.error!.message).toHaveLength(500);
    expect(bounded.omitted).toMatch(
      /records of steps that succeeded, were skipped or wait \(see stepCounts\)/,
    );
  });

  test('6,000 failed steps with the longest ids and long errors: counts only, and it still fits', () => {
    const failed = (): Partial<StepResult> => ({
      status: 'failed',
      error: { type: 'Boom', message: 'e'.repeat(5_000) },
    });
    const bounded = boundedResult(result(8, 6_000, failed, longId));
    fits(bounded);
    expect(bounded.stepOrder).toEqual([]);
    expect(bounded.stepCounts).toEqual({ failed: 6_000 });
    expect(bounded.omitted).toMatch(/every step record \(see stepCounts\)/);
  });
});

describe('map steps', () => {
  const mapSpec = (step: Record<string, unknown>) => ({
    name: 'maps',
    project: 'acme',
    steps: [
      { id: 'list', task: ECHO, args: [[1, 2]] },
      { id: 'each', task: ECHO, ...step },
    ],
  });

  test('a map over a list or over another step’s output is valid; the reference is a dependency', () => {
    const parsed = parsePipelineSpec(mapSpec({ map: { over: { $step: 'list' }, concurrency: 4 } }));
    expect(parsed.ok).toBe(true);
    if (!parsed.ok) return;
    expect(dependenciesOf(parsed.spec.steps[1]!)).toEqual(['list']);
    expect(parsePipelineSpec(mapSpec({ map: { over: [1, 2, 3] } })).ok).toBe(true);
  });

  test('bad maps are refused naming the field', () => {
    expect(issuesOf(mapSpec({ map: { over: { $step: 'nope' } } }))).toMatch(
      /steps\[1\]\.map\.over: unknown step "nope"/,
    );
    expect(issuesOf(mapSpec({ map: { over: { $step: 'each' } } }))).toMatch(/uses its own output/);
    expect(issuesOf(mapSpec({ map: { over: 'abc' } }))).toMatch(/steps\[1\]\.map\.over: a list, or/);
    expect(issuesOf(mapSpec({ map: { over: [1], concurrency: 0 } }))).toMatch(/map\.concurrency/);
    expect(issuesOf(mapSpec({ map: { over: [1], maxItemAttempts: 11 } }))).toMatch(/map\.maxItemAttempts/);
    expect(issuesOf(mapSpec({ map: { over: [1], bogus: true } }))).toMatch(/map/);
    expect(
      issuesOf({
        name: 'maps',
        project: 'acme',
        steps: [{ id: 'each', agent: 'analyst', map: { over: [1] } }],
      }),
    ).toMatch(/steps\[0\]\.map: a map step runs a "task"/);
    // An inline list counts toward the step's input limit: a large one goes by reference.
    const big = Array.from({ length: 40_000 }, (_, i) => `item-${i}`);
    expect(issuesOf(mapSpec({ map: { over: big } }))).toMatch(/and map\.over take \d+ bytes/);
  });

  test('the map call carries the spec’s settings, the resolved list and the step’s non-retryable errors', () => {
    const step = stepSpecSchema.parse({
      id: 'each',
      task: ECHO,
      map: { over: { $step: 'list' }, maxItemAttempts: 2 },
      nonRetryableErrors: ['ValueError'],
    });
    expect(mapCallOf(step, [1, 2])).toEqual({
      over: [1, 2],
      maxItemAttempts: 2,
      nonRetryableErrors: ['ValueError'],
    });
  });
});
