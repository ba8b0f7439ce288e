/**
 * A code-defined pipeline may start any number of steps at once (a fan-out);
 * at most `maxInFlightSteps` of them (default 1,000, under Temporal's 2,000
 * pending activities) are activities at a time, and the rest wait in the
 * workflow as pending. The bound is read back from history.
 */
import type { PipelineResult } from '../../core/schemas/pipeline-spec';
import { mostStepsInFlight } from '../helpers/history';
import { failureCause } from '../helpers/workflow-failure';
import { startTestEnv, type TestEnv } from '../helpers/test-env';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

test('a fan-out wider than the window runs at most the window of steps at once', async () => {
  const handle = await env.startCodePipeline('batchScoring', {
    project: 'window',
    maxInFlightSteps: 2,
    input: { items: [1, 2, 3, 4, 5, 6], indexMb: 16 },
  });
  const result = (await handle.result()) as PipelineResult;
  expect(result.status).toBe('succeeded');
  // index, score-0 … score-5 and combine.
  expect(result.stepOrder).toHaveLength(8);
  expect(mostStepsInFlight(await handle.fetchHistory())).toBe(2);
}, 300_000);

test('a window out of bounds is refused, naming it', async () => {
  const handle = await env.startCodePipeline('batchScoring', {
    project: 'window',
    maxInFlightSteps: 0,
    input: { items: [1] },
  });
  const cause = await failureCause(handle);
  expect(cause.type).toBe('InvalidPipelineInput');
  expect(cause.message).toMatch(/maxInFlightSteps/);
}, 120_000);
