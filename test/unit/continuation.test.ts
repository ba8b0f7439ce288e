/**
 * What a long pipeline carries when it continues as new (core/continuation.ts): small whatever the
 * pipeline's size, enough to go on (statuses, the outputs unfinished steps read, failures, usage).
 */
import fc from 'fast-check';
import {
  carryState,
  compactSteps,
  continuationInputSchema,
  CONTINUATION_LIMITS,
  restoredRecords,
  shouldContinue,
  withCarriedUsage,
} from '../../core/continuation';
import { parsePipelineSpec } from '../../core/dag';
import type { StepResult, StepStatus, UsageReport } from '../../core/schemas/pipeline-spec';

const totals: UsageReport['totals'] = {
  steps: 3,
  attempts: 4,
  cpuSeconds: 1.5,
  runningMs: 300,
  temporalQueueMs: 20,
  rayQueueMs: 5,
};

describe('continuing as new', () => {
  test('a run continues after its steps per run, or once half its history budget is used, never when all is done', () => {
    const base = {
      stepsEndedThisRun: 10,
      stepsPerRun: 100,
      historyBytes: 1_000,
      historyBudgetBytes: 40_000,
      allFinal: false,
    };
    expect(shouldContinue(base)).toBe(false);
    expect(shouldContinue({ ...base, stepsEndedThisRun: 100 })).toBe(true);
    expect(shouldContinue({ ...base, historyBytes: 20_000 })).toBe(true);
    expect(shouldContinue({ ...base, stepsEndedThisRun: 100, allFinal: true })).toBe(false);
  });

  test('carried: every status, the outputs unfinished steps read, failures with short errors, usage', () => {
    const results: Record<string, StepResult> = {
      a: { status: 'succeeded', attempts: 1, output: { big: 'x'.repeat(1000) } },
      b: { status: 'succeeded', attempts: 2, output: 'needed' },
      c: { status: 'failed', attempts: 3, error: { type: 'ValueError', message: 'm'.repeat(2000) } },
      d: { status: 'skipped', attempts: 0 },
      e: { status: 'pending', attempts: 0 },
    };
    const carried = carryState({
      order: ['a', 'b', 'c', 'd', 'e'],
      results,
      needed: new Set(['b']),
      usage: totals,
      priority: 2,
      runsBefore: 0,
    });
    expect(carried).toMatchObject({
      runs: 1,
      statuses: 'ssfkp',
      outputs: { b: 'needed' },
      priority: 2,
      usage: totals,
    });
    expect(carried.records.c!.error!.message).toHaveLength(CONTINUATION_LIMITS.maxCarriedErrorChars);
    expect(Object.keys(carried.records)).toEqual(['c']);
    expect(continuationInputSchema.safeParse({ spec: {}, continuation: carried }).success).toBe(true);

    const restored = Object.fromEntries(restoredRecords(carried).map((r) => [r.id, r.result]));
    expect(restored.a).toEqual({ status: 'succeeded', attempts: 1 }); // its output stayed behind
    expect(restored.b).toEqual({ status: 'succeeded', attempts: 1, output: 'needed' });
    expect(restored.c).toMatchObject({ status: 'failed', attempts: 3, error: { type: 'ValueError' } });
    expect(restored.e!.status).toBe('pending');
    expect(withCarriedUsage({ steps: {}, agents: {}, totals }, carried.usage).totals.steps).toBe(6);
  });

  test('statuses survive the trip for any pipeline; what is carried grows by about one byte a step', () => {
    const statuses: StepStatus[] = ['pending', 'succeeded', 'failed', 'skipped', 'cancelled'];
    fc.assert(
      fc.property(fc.array(fc.constantFrom(...statuses), { minLength: 1, maxLength: 3000 }), (list) => {
        const order = list.map((_, i) => `step-${i}`);
        const results = Object.fromEntries(
          list.map((status, i) => [order[i]!, { status, attempts: 1, output: 'o'.repeat(50) }]),
        );
        const carried = carryState({
          order,
          results,
          needed: new Set(),
          usage: totals,
          priority: 3,
          runsBefore: 4,
        });
        expect(restoredRecords(carried).map((r) => r.result.status)).toEqual(list);
        expect(carried.runs).toBe(5);
        const failures = Math.min(
          CONTINUATION_LIMITS.maxCarriedRecords,
          list.filter((s) => s === 'failed' || s === 'cancelled').length,
        );
        // The ids (which the spec carries anyway) and one character per step, plus the failures.
        expect(JSON.stringify(carried).length).toBeLessThan(
          order.join('","').length + list.length + 200 + failures * 80,
        );
      }),
      { numRuns: 50 },
    );
  });

  test('compacted steps parse back to the same steps', () => {
    const spec = {
      name: 'p',
      project: 'acme',
      steps: [
        { id: 'a', task: 'pantheon_tasks.testkit:echo' },
        {
          id: 'b',
          task: 'pantheon_tasks.testkit:echo',
          args: [{ $step: 'a' }],
          kwargs: { k: 1 },
          dependsOn: ['a'],
        },
      ],
    };
    const parsed = parsePipelineSpec(spec);
    if (!parsed.ok) throw new Error('expected a valid spec');
    const compact = compactSteps(parsed.spec.steps);
    expect(compact[0]).toEqual({ id: 'a', task: 'pantheon_tasks.testkit:echo' });
    const again = parsePipelineSpec({ ...parsed.spec, steps: compact });
    expect(again.ok && again.spec.steps).toEqual(parsed.spec.steps);
  });

  test('continueAsNewAfterSteps: 0 keeps one history, which refuses more steps than it holds', () => {
    const steps = Array.from({ length: 6_001 }, (_, i) => ({
      id: `s${i}`,
      task: 'pantheon_tasks.testkit:echo',
    }));
    const parsed = parsePipelineSpec({ name: 'p', project: 'acme', continueAsNewAfterSteps: 0, steps });
    expect(!parsed.ok && parsed.issues.map((i) => i.path)).toEqual(['continueAsNewAfterSteps']);
    expect(parsePipelineSpec({ name: 'p', project: 'acme', steps }).ok).toBe(true);
    const tooFew = parsePipelineSpec({
      name: 'p',
      project: 'acme',
      continueAsNewAfterSteps: 5,
      steps: steps.slice(0, 2),
    });
    expect(!tooFew.ok && tooFew.issues[0]!.message).toMatch(/0 \(never\), or from 10 to 5000/);
  });
});
