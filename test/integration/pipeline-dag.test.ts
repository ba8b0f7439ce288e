/**
 * DAG semantics of the JSON pipeline: failure policies, skipped dependants,
 * per-step retry and timeout overrides, and references into outputs.
 */
import { WorkflowFailedError } from '@temporalio/client';
import type { PipelineResult } from '../../core/schemas/pipeline-spec';
import { startTestEnv, type TestEnv } from '../helpers/test-env';

const ECHO = 'pantheon_tasks.testkit:echo';
const SLEEP = 'pantheon_tasks.testkit:sleep';
const ALWAYS_FAILS = 'pantheon_tasks.examples:classify_strict';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

async function failedResult(spec: unknown): Promise<PipelineResult> {
  const handle = await env.startPipeline(spec);
  const err = await handle.result().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  const cause = (err as WorkflowFailedError).cause as { type?: string; details?: unknown[] };
  expect(cause.type).toBe('PipelineStepFailed');
  return cause.details![0] as PipelineResult;
}

describe('failure policies', () => {
  // bad fails at once (non-retryable); slow is still running then; after depends on bad.
  const steps = [
    { id: 'bad', task: ALWAYS_FAILS, args: ['none', ['a', 'b']], nonRetryableErrors: ['ValueError'] },
    { id: 'slow', task: SLEEP, args: [15, 'done'] },
    { id: 'after-bad', task: ECHO, args: [{ $step: 'bad' }] },
    { id: 'after-slow', task: ECHO, args: [{ $step: 'slow' }] },
  ];

  test('failFast: the first failure cancels running steps and skips the rest', async () => {
    const result = await failedResult({ name: 'ff', project: 'dag', failurePolicy: 'failFast', steps });
    expect(result.status).toBe('failed');
    expect(result.steps.bad).toMatchObject({ status: 'failed', attempts: 1, error: { type: 'ValueError' } });
    expect(result.steps.slow!.status).toBe('cancelled');
    expect(result.steps['after-bad']!.status).toBe('skipped');
    expect(result.steps['after-slow']!.status).toBe('skipped');
  });

  test('continue: independent branches finish; only dependants of the failure are skipped', async () => {
    const result = await failedResult({ name: 'cont', project: 'dag', failurePolicy: 'continue', steps });
    expect(result.steps.bad!.status).toBe('failed');
    expect(result.steps['after-bad']!.status).toBe('skipped');
    expect(result.steps.slow).toMatchObject({ status: 'succeeded', output: 'done' });
    expect(result.steps['after-slow']).toMatchObject({ status: 'succeeded', output: 'done' });
  });
});

describe('per-step overrides', () => {
  test('a step timeout ends an attempt, and the step retry policy bounds the attempts', async () => {
    const started = Date.now();
    const result = await failedResult({
      name: 'timeout',
      project: 'dag',
      steps: [
        {
          id: 'stuck',
          task: SLEEP,
          args: [60],
          timeoutSeconds: 3,
          retry: { maximumAttempts: 2, initialIntervalMs: 100 },
        },
      ],
    });
    expect(result.steps.stuck).toMatchObject({ status: 'failed', attempts: 2 });
    expect(result.steps.stuck!.error!.message).toMatch(/timed? ?out|TIMEOUT/i);
    // Two attempts of 3 s each, far from the task's 60 s.
    expect(Date.now() - started).toBeLessThan(45_000);
  });

  test('references reach into an output with a dotted path', async () => {
    const result = await env.runPipeline({
      name: 'paths',
      project: 'dag',
      steps: [
        { id: 'a', task: ECHO, args: [{ user: { name: 'ada', langs: ['py'] } }] },
        { id: 'b', task: ECHO, args: [{ $step: 'a', path: 'user.name' }] },
      ],
    });
    expect(result.steps.b!.output).toBe('ada');
  });
});
