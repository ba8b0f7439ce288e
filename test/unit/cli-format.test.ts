/**
 * The CLI's header says when a result was made lighter to fit one Temporal
 * payload, with the step counts that replace the records left out.
 */
import { header, stepsTable } from '../../cli/format';
import { stepPercent, withMapItems } from '../../cli/progress-view';
import { boundedResult, type PipelineResult } from '../../core/schemas/pipeline-spec';

const base: PipelineResult = {
  name: 'wide',
  project: 'acme',
  priority: 3,
  status: 'failed',
  stepOrder: ['a', 'b', ...Array.from({ length: 40 }, (_, i) => `c${i}`)],
  steps: {
    a: { status: 'succeeded', attempts: 1 },
    b: { status: 'failed', attempts: 2, error: { type: 'Boom', message: 'no' } },
    ...Object.fromEntries(
      Array.from({ length: 40 }, (_, i) => [`c${i}`, { status: 'skipped', attempts: 0 }]),
    ),
  },
  usage: {
    steps: {},
    agents: {},
    totals: { steps: 2, attempts: 3, cpuSeconds: 0, runningMs: 0, temporalQueueMs: 0, rayQueueMs: 0 },
  },
};

test('a whole result: one header line', () => {
  expect(header(base, 'wf-1')).toBe('wide (wf-1) · project acme · priority 3 · failed');
});

test('a lightened result: the header says what was left out and counts the steps', () => {
  // 42 records do not fit 1,500 bytes; the one that failed does.
  const lighter = boundedResult(
    { ...base, steps: { ...base.steps, a: { status: 'succeeded', attempts: 1, output: 'x'.repeat(2_000) } } },
    1_500,
  );
  expect(lighter.stepCounts).toEqual({ succeeded: 1, failed: 1, skipped: 40 });
  const lines = header(lighter, 'wf-1').split('\n');
  expect(lines[1]).toMatch(/^left out: .*records of steps that succeeded, were skipped or wait/);
  expect(lines[2]).toBe('steps: 1 succeeded, 1 failed, 40 skipped');
  // The table lists the records that are there.
  expect(stepsTable(lighter)).toMatch(/\bb\b.*failed/);
  expect(stepsTable(lighter)).not.toMatch(/\ba\b.*succeeded/);
});

test('a running map step shows its items from its activity’s heartbeat; other steps are left as they are', () => {
  const running: PipelineResult = {
    ...base,
    status: 'running',
    stepOrder: ['a', 'm'],
    steps: { a: { status: 'succeeded', attempts: 1 }, m: { status: 'running', attempts: 1 } },
  };
  const items = { total: 400, succeeded: 100, failed: 2, running: 8, itemAttempts: 110 };
  const merged = withMapItems(running, [
    { activityId: 'step:m', details: { state: 'running', items } },
    { activityId: 'step:a', details: { items } }, // finished steps keep their own record
    { activityId: 'step:x', details: 'not a state' },
  ]);
  expect(merged.steps.m!.items).toEqual(items);
  expect(merged.steps.a!.items).toBeUndefined();
  expect(stepPercent(merged.steps.m!, Date.now())).toBeCloseTo(5 + (90 * 102) / 400);
  expect(stepsTable(merged)).toMatch(/\bm\b.*running 100\/400/);
  // A heartbeat without items (an ordinary step) changes nothing.
  expect(withMapItems(running, [{ activityId: 'step:m', details: { state: 'running' } }]).steps.m).toEqual(
    running.steps.m,
  );
});
