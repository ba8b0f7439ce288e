/**
 * A request no node group can ever hold fails in seconds, non-retryably,
 * naming the short resource, before anything reaches Ray (Ray itself would
 * keep such a task pending forever).
 */
import { WorkflowFailedError } from '@temporalio/client';
import { recordFigures } from '../helpers/figures';
import { startTestEnv, type TestEnv } from '../helpers/test-env';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

async function failureOf(resources: Record<string, unknown>) {
  const started = Date.now();
  const handle = await env.startPipeline({
    name: 'infeasible',
    project: 'drills',
    steps: [{ id: 'big', task: 'pantheon_tasks.testkit:echo', args: [1], resources }],
  });
  const err = await handle.result().catch((e: unknown) => e);
  const ms = Date.now() - started;
  const history = await handle.fetchHistory();
  const activities = (history.events ?? [])
    .map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)
    .filter((name): name is string => name !== undefined && name !== null);
  return { err, ms, activities };
}

test('64 GPUs: fails in seconds, non-retryably, saying which resource is short', async () => {
  const { err, ms, activities } = await failureOf({ gpus: 64 });
  recordFigures('infeasible', { detectMs: ms });
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as {
    message?: string;
    type?: string;
    nonRetryable?: boolean;
  };
  expect(cause.message).toMatch(/steps\[0\]\.resources: no node group can hold gpus=64 \(largest: 0\)/);
  expect(cause.nonRetryable).toBe(true);
  expect(activities).not.toContain('runRayTask');
  expect(ms).toBeLessThan(10_000);
});

test('memory, disk and custom resources are named too', async () => {
  const memory = await failureOf({ memoryMb: 1_000_000 });
  expect(String((memory.err as WorkflowFailedError).cause?.message)).toMatch(
    /memoryMb=1000000 \(largest: \d+\)/,
  );
  const disk = await failureOf({ diskGb: 100_000 });
  expect(String((disk.err as WorkflowFailedError).cause?.message)).toMatch(/diskGb=100000 \(largest: \d+\)/);
  const custom = await failureOf({ custom: { tpu: 8 } });
  expect(String((custom.err as WorkflowFailedError).cause?.message)).toMatch(/custom tpu=8 \(largest: 0\)/);
});
