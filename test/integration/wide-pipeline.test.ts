/**
 * A pipeline wider than Temporal's 2,000 pending activities: 3,000
 * independent steps complete, because at most a window of them is in flight
 * at once and the rest wait inside the workflow. The window is lowered here
 * to keep the test's history small; its bound is read back from history.
 */
import { MAX_RESULT_BYTES, type PipelineResult } from '../../core/schemas/pipeline-spec';
import { startTestEnv, type TestEnv } from '../helpers/test-env';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

const STEPS = 3_000;
const WINDOW = 150;

test(`${STEPS} independent steps complete with at most ${WINDOW} in flight`, async () => {
  const handle = await env.startPipeline({
    name: 'wide',
    project: 'drills',
    maxInFlightSteps: WINDOW,
    steps: Array.from({ length: STEPS }, (_, i) => ({
      id: `s${i}`,
      task: 'pantheon_tasks.testkit:echo',
      args: [i],
    })),
  });
  const result = (await handle.result()) as PipelineResult;
  expect(result.status).toBe('succeeded');
  // 3,000 full records (and their usage) take about 2 MB: compact records of every step are returned instead.
  expect(result.omitted).toMatch(/step details \(compact records kept\)/);
  expect(result.stepOrder).toHaveLength(STEPS);
  expect(Object.values(result.steps).filter((s) => s.status === 'succeeded')).toHaveLength(STEPS);
  expect(result.usage.totals.steps).toBe(STEPS);
  expect(JSON.stringify(result).length).toBeLessThanOrEqual(MAX_RESULT_BYTES);

  // In flight: scheduled and not yet closed, over the whole history.
  const history = await handle.fetchHistory();
  let inFlight = 0;
  let most = 0;
  for (const event of history.events ?? []) {
    if (event.activityTaskScheduledEventAttributes?.activityType?.name === 'runRayTask') inFlight++;
    if (
      event.activityTaskCompletedEventAttributes ||
      event.activityTaskFailedEventAttributes ||
      event.activityTaskTimedOutEventAttributes ||
      event.activityTaskCanceledEventAttributes
    )
      inFlight--;
    most = Math.max(most, inFlight);
  }
  expect(most).toBeLessThanOrEqual(WINDOW);
  expect(most).toBeGreaterThan(1);
}, 1_800_000);
