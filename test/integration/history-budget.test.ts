/**
 * A pipeline's history stays under Temporal's limits whatever its steps
 * return (core/history-budget.ts): a step whose `$step` references would pull
 * more into one activity than it may carry is refused by name before it runs
 * (it used to fail the workflow task forever), and steps whose outputs would
 * fill the history past the run's budget wait for room or are refused, where
 * Temporal would otherwise terminate the run at 50 MB.
 */
import { HISTORY_LIMITS } from '../../core/history-budget';
import { failedPipelineResult } from '../helpers/workflow-failure';
import { startTestEnv, type TestEnv } from '../helpers/test-env';

let env: TestEnv;
beforeAll(async () => {
  // Outputs inline, as on a worker without a blob store: what the budget exists for.
  env = await startTestEnv({ env: { PANTHEON_BLOB_THRESHOLD_BYTES: '0' } });
});
afterAll(async () => {
  await env?.close();
});

const TEXT = 'pantheon_tasks.testkit:text';
const MEASURE = 'pantheon_tasks.testkit:measure';

test('a fan-in whose resolved input is too large for one activity is refused by name; a smaller one runs', async () => {
  const parts = Array.from({ length: 5 }, (_, i) => `part${i}`);
  const handle = await env.startPipeline({
    name: 'wide-fan-in',
    project: 'drills',
    failurePolicy: 'continue',
    steps: [
      ...parts.map((id) => ({ id, task: TEXT, args: [240_000] })),
      // 3 × 240 KB: under the 1 MB a step may be given.
      { id: 'join-three', task: MEASURE, args: [parts.slice(0, 3).map((p) => ({ $step: p }))] },
      // 5 × 240 KB: over it.
      { id: 'join-five', task: MEASURE, args: [parts.map((p) => ({ $step: p }))] },
    ],
  });
  const result = await failedPipelineResult(handle);
  for (const part of parts) expect(result.steps[part]?.status).toBe('succeeded');
  expect(result.steps['join-three']).toMatchObject({ status: 'succeeded' });
  expect(result.steps['join-three']?.output).toBeGreaterThan(3 * 240_000);
  expect(result.steps['join-five']).toMatchObject({
    status: 'failed',
    error: { type: 'StepInputTooLarge' },
  });
  expect(result.steps['join-five']?.error?.message).toMatch(
    new RegExp(
      `^step "join-five": its resolved input takes \\d+ bytes as JSON, more than the ${HISTORY_LIMITS.maxStepInputBytes}`,
    ),
  );
  // Refused before it ran: no activity was scheduled for it.
  const history = await handle.fetchHistory();
  const scheduled = (history.events ?? []).filter(
    (e) => e.activityTaskScheduledEventAttributes?.activityId === 'step:join-five',
  );
  expect(scheduled).toHaveLength(0);
}, 600_000);

test('outputs that would fill the history past its budget: the run closes under it, refusing the steps that do not fit', async () => {
  const STEPS = 200;
  const handle = await env.startPipeline({
    name: 'heavy-outputs',
    project: 'drills',
    failurePolicy: 'continue',
    // One history on purpose: the budget of one run is what this checks (by default the run would
    // continue as new once half of it is used).
    continueAsNewAfterSteps: 0,
    steps: Array.from({ length: STEPS }, (_, i) => ({ id: `s${i}`, task: TEXT, args: [250_000] })),
  });
  const result = await failedPipelineResult(handle);
  const steps = Object.values(result.steps);
  const succeeded = steps.filter((s) => s.status === 'succeeded').length;
  const refused = steps.filter((s) => s.error?.type === 'HistoryBudgetExhausted');
  // About 150 outputs of 250 KB fit in 40 MB beside the run's own room; the rest are refused by name.
  expect(succeeded).toBeGreaterThan(140);
  expect(refused.length).toBe(STEPS - succeeded);
  expect(refused[0]?.error?.message).toMatch(/^step "s\d+": the pipeline's history already holds [\d.]+ MB/);

  const { historySize } = await handle.describe();
  process.stdout.write(
    `[figures] history-budget: ${JSON.stringify({ steps: STEPS, succeeded, refused: refused.length, historySize })}\n`,
  );
  expect(historySize).toBeLessThanOrEqual(HISTORY_LIMITS.budgetBytes);
  // Most of the budget was used: steps waited for room rather than being refused early.
  expect(historySize).toBeGreaterThan(HISTORY_LIMITS.budgetBytes * 0.8);
}, 900_000);
