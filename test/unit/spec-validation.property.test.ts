/**
 * Whatever arrives as a pipeline spec or as an update's input, the validation
 * the workflow runs either accepts it — and then planning and scheduling over
 * it do not throw — or refuses it with issues that name a field. No other
 * exception escapes: one would fail the workflow task, and Temporal would
 * retry it forever. Random and mutated inputs (fast-check); the seed is
 * printed, and PANTHEON_FC_SEED replays a run.
 */
import fc from 'fast-check';
import { agentCatalog } from '../../agents';
import {
  blockedSteps,
  dependenciesOf,
  findCycle,
  parsePipelineSpec,
  readySteps,
  resolveStepRefs,
} from '../../core/dag';
import { nodeGroupsConfigSchema } from '../../core/schemas/node-groups';
import { SPEC_LIMITS, type StepSpec, type StepStatus } from '../../core/schemas/pipeline-spec';
import { DEFAULT_ALLOWED_TASK_MODULES } from '../../core/schemas/task-ref';
import { addStepIssues, planSteps, stepResourcesIssues, type PlanContext } from '../../core/step-plan';
import nodeGroups from '../../config/node-groups.json';

const seed = Number(process.env.PANTHEON_FC_SEED ?? Date.now() % 2 ** 31);
const runs = Number(process.env.PANTHEON_FC_RUNS ?? 400);
process.stdout.write(`[property] fast-check seed ${seed} (PANTHEON_FC_SEED=${seed} replays it)\n`);

const context: PlanContext = {
  nodeGroups: nodeGroupsConfigSchema.parse(nodeGroups).groups,
  allowedTaskPackages: [...DEFAULT_ALLOWED_TASK_MODULES, 'pantheon_tasks'],
};

const PROTOTYPE_NAMES = ['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf', 'prototype'];
const stepId = fc.oneof(
  fc.constantFrom('a', 'b', 'c', 'd', ...PROTOTYPE_NAMES),
  fc.string({ maxLength: 12 }),
);
const deep = (depth: number, leaf: unknown): unknown => {
  let value: unknown = leaf;
  for (let i = 0; i < depth; i++) value = i % 2 ? [value] : { x: value };
  return value;
};
const stepRef = fc.oneof(
  fc.record({ $step: stepId }),
  fc.record({ $step: stepId, path: fc.oneof(fc.string(), fc.integer(), fc.constant('constructor.name')) }),
  fc.record({ $step: fc.oneof(fc.integer(), fc.constant(null), fc.object()) }),
  fc.record({ $step: stepId, extra: fc.anything() }),
);
const value: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 4, arbitrary: fc.jsonValue({ maxDepth: 3 }) },
  { weight: 2, arbitrary: stepRef },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 200 }).map((d) => deep(d, 1)) },
  { weight: 1, arbitrary: fc.constant(JSON.parse('{"__proto__": {"polluted": true}}')) },
  { weight: 1, arbitrary: fc.constantFrom(Number.NaN, Number.POSITIVE_INFINITY, -0) },
);
const resources = fc.oneof(
  fc.constant(undefined),
  fc.record(
    {
      cpus: fc.oneof(fc.double(), fc.integer({ min: -2, max: 8 })),
      memoryMb: fc.oneof(fc.double(), fc.integer({ min: 0, max: 10_000 })),
      gpus: fc.integer({ min: 0, max: 2 }),
      labels: fc.dictionary(
        fc.oneof(fc.constantFrom('ray.io/node-id', 'ray.io/zone', 'zone', '__proto__'), fc.string()),
        fc.string(),
      ),
      custom: fc.dictionary(fc.oneof(fc.constantFrom('__proto__', 'constructor'), fc.string()), fc.double()),
    },
    { requiredKeys: [] },
  ),
);
const retry = fc.oneof(
  fc.constant(undefined),
  fc.record(
    {
      maximumAttempts: fc.integer({ min: -1, max: 1000 }),
      initialIntervalMs: fc.oneof(fc.integer({ min: -1, max: 10 ** 9 }), fc.double()),
      maximumIntervalMs: fc.integer({ min: -1, max: 10 ** 9 }),
      backoffCoefficient: fc.double({ min: -1, max: 1000 }),
      nonRetryableErrorTypes: fc.array(fc.string(), { maxLength: 3 }),
    },
    { requiredKeys: [] },
  ),
);
const step = fc.record(
  {
    id: stepId,
    task: fc.oneof(
      fc.constantFrom('pantheon_tasks.testkit:echo', 'os:system', 'pantheon_tasks.testkit:__init__'),
      fc.string(),
    ),
    agent: fc.oneof(fc.constantFrom('analyst', 'writer', 'constructor'), fc.string()),
    args: fc.array(value, { maxLength: 4 }),
    kwargs: fc.dictionary(
      fc.oneof(fc.constantFrom('__proto__', 'constructor', 'x', '__class__'), fc.string()),
      value,
      {
        maxKeys: 4,
      },
    ),
    dependsOn: fc.array(stepId, { maxLength: 3 }),
    resources,
    retry,
    timeoutSeconds: fc.oneof(fc.double(), fc.integer({ min: -10, max: 10 ** 9 })),
  },
  { requiredKeys: ['id'] },
);
const spec = fc.record(
  {
    name: fc.oneof(fc.constant('demo'), fc.string(), fc.constant(' padded '), fc.constant('tab\there')),
    project: fc.oneof(fc.constant('acme'), fc.string()),
    priority: fc.oneof(fc.integer({ min: 0, max: 6 }), fc.double()),
    failurePolicy: fc.constantFrom('failFast', 'continue', 'other'),
    steps: fc.array(step, { maxLength: 6 }),
  },
  { requiredKeys: ['name', 'project', 'steps'] },
);
/** Anything at all, and valid specs with one part replaced by anything. */
const input = fc.oneof(
  { weight: 1, arbitrary: fc.anything() },
  { weight: 6, arbitrary: spec },
  {
    weight: 3,
    arbitrary: fc
      .tuple(spec, fc.constantFrom('name', 'steps', 'priority', 'project'), fc.anything())
      .map(([s, key, v]) => ({ ...s, [key]: v })),
  },
);

function expectNamedIssues(issues: ReadonlyArray<{ path: string; message: string }>): void {
  expect(issues.length).toBeGreaterThan(0);
  for (const issue of issues) {
    expect(typeof issue.path).toBe('string');
    expect(issue.path.length).toBeGreaterThan(0);
    expect(issue.message.length).toBeGreaterThan(0);
  }
}

/** What the workflow does with an accepted spec, short of running it. */
function planAndSchedule(steps: readonly StepSpec[]): void {
  planSteps({ steps }, context, agentCatalog);
  const status: Record<string, StepStatus> = Object.create(null);
  for (const s of steps) status[s.id] = 'pending';
  readySteps(steps, status);
  blockedSteps(steps, status);
  const outputs: Record<string, unknown> = Object.create(null);
  for (const s of steps) {
    dependenciesOf(s);
    resolveStepRefs(s.args, outputs);
    resolveStepRefs(s.kwargs, outputs);
    outputs[s.id] = { nested: { value: 1 } };
  }
}

describe('spec and update validation never throws, and names what it refuses', () => {
  test('pipeline specs', () => {
    fc.assert(
      fc.property(input, (raw) => {
        const parsed = parsePipelineSpec(raw);
        if (parsed.ok) planAndSchedule(parsed.spec.steps);
        else expectNamedIssues(parsed.issues);
      }),
      { seed, numRuns: runs },
    );
  });

  test('addStep and setStepResources update inputs', () => {
    const existing = parsePipelineSpec({
      name: 'demo',
      project: 'acme',
      steps: [
        { id: 'a', task: 'pantheon_tasks.testkit:echo' },
        { id: 'b', task: 'pantheon_tasks.testkit:echo', dependsOn: ['a'] },
      ],
    });
    if (!existing.ok) throw new Error('the base spec must be valid');
    const updateInput = fc.oneof(
      fc.anything(),
      step.map((s) => ({ step: s })),
      fc.record({ stepId, resources }),
      fc.record({ stepId, resources: fc.anything() }),
    );
    fc.assert(
      fc.property(updateInput, (raw) => {
        const added = addStepIssues(raw, existing.spec.steps, context, agentCatalog);
        if (added.issues.length > 0) expectNamedIssues(added.issues);
        else planAndSchedule([...existing.spec.steps, added.step!]);
        const changed = stepResourcesIssues(raw, existing.spec.steps, context, agentCatalog);
        if (changed.issues.length > 0) expectNamedIssues(changed.issues);
        else expect(changed.group).toBeDefined();
      }),
      { seed, numRuns: runs },
    );
  });

  test('the longest dependency chain a spec may hold is checked without exhausting the stack', () => {
    // As many chained steps as the spec's byte limit holds (the step count's own limit is higher).
    const steps: Array<{ id: string; task: string; dependsOn?: string[] }> = [];
    let bytes = 100;
    for (let i = 0; i < SPEC_LIMITS.maxSteps; i++) {
      const step = {
        id: `s${i}`,
        task: 'pantheon_tasks.testkit:echo',
        ...(i > 0 && { dependsOn: [`s${i - 1}`] }),
      };
      bytes += JSON.stringify(step).length + 1;
      if (bytes > SPEC_LIMITS.maxSpecBytes) break;
      steps.push(step);
    }
    expect(steps.length).toBeGreaterThan(15_000);
    expect(parsePipelineSpec({ name: 'chain', project: 'acme', steps }).ok).toBe(true);
    // The cycle search is iterative: a chain far longer than the call stack closes into a cycle found.
    const long = Array.from({ length: 200_000 }, (_, i) => ({
      id: `s${i}`,
      dependsOn: [`s${(i + 1) % 200_000}`],
    })) as unknown as StepSpec[];
    for (const s of long) Object.assign(s, { args: [], kwargs: {} });
    expect(findCycle(long)?.length).toBe(200_001);
  });
});
