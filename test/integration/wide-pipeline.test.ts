/**
 * A pipeline wider than Temporal's 2,000 pending activities and longer than
 * one run: 3,000 independent steps complete, because at most a window of them
 * is in flight at once (the rest wait inside the workflow), and the pipeline
 * continues as new every 1,000 steps, carrying what later steps read. The
 * window and the steps per run are lowered here to keep the test short; the
 * window's bound is read back from every run's history.
 */
import { MAX_RESULT_BYTES, type PipelineResult } from '../../core/schemas/pipeline-spec';
import { mostStepsInFlight } from '../helpers/history';
import { startTestEnv, waitUntil, type TestEnv } from '../helpers/test-env';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

const STEPS = 3_000;
const WINDOW = 150;
const PER_RUN = 1_000;

test(`${STEPS} independent steps complete with at most ${WINDOW} in flight, continuing as new every ${PER_RUN}`, async () => {
  const handle = await env.startPipeline({
    name: 'wide',
    project: 'drills',
    maxInFlightSteps: WINDOW,
    continueAsNewAfterSteps: PER_RUN,
    steps: [
      ...Array.from({ length: STEPS }, (_, i) => ({
        id: `s${i}`,
        task: 'pantheon_tasks.testkit:echo',
        args: [i],
      })),
      // Reads the first step's output after the last step: that output is carried from run to run.
      {
        id: 'last',
        task: 'pantheon_tasks.testkit:echo',
        args: [{ $step: 's0' }],
        dependsOn: [`s${STEPS - 1}`],
      },
    ],
  });
  const first = (await handle.describe()).runId;
  // While a later run works, progress still shows what the first run did.
  const seen = await waitUntil(
    'a continued run to answer progress',
    async () => {
      const described = await handle.describe();
      if (described.runId === first) return undefined;
      return env.progress(handle).catch(() => undefined);
    },
    600_000,
    500,
  );
  expect(seen.steps.s0?.status).toBe('succeeded');

  const result = (await handle.result()) as PipelineResult;
  expect(result.status).toBe('succeeded');
  expect(result.stepOrder).toHaveLength(STEPS + 1);
  expect(Object.values(result.steps).filter((s) => s.status === 'succeeded')).toHaveLength(STEPS + 1);
  expect(result.steps.last?.output).toBe(0);
  expect(result.usage.totals.steps).toBe(STEPS + 1);
  expect(JSON.stringify(result).length).toBeLessThanOrEqual(MAX_RESULT_BYTES);

  // Three or four runs (the last step may start a run of its own), each within the window.
  const runs: string[] = [];
  for await (const execution of env.client.workflow.list({ query: `WorkflowId = '${handle.workflowId}'` }))
    runs.push(execution.runId);
  expect(runs.length).toBeGreaterThanOrEqual(STEPS / PER_RUN);
  let most = 0;
  for (const runId of runs)
    most = Math.max(
      most,
      mostStepsInFlight(await env.client.workflow.getHandle(handle.workflowId, runId).fetchHistory()),
    );
  expect(most).toBeLessThanOrEqual(WINDOW);
  expect(most).toBeGreaterThan(1);
}, 1_800_000);
