/**
 * Results: Python exceptions come back as ApplicationFailures with the Python
 * type and message (non-retryable when the step says so), and an output above
 * the size limit fails clearly instead of being truncated.
 */
import { WorkflowFailedError } from '@temporalio/client';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { startTestEnv, type TestEnv } from '../helpers/test-env';

let env: TestEnv;
beforeAll(async () => {
  // A result limit below the spec's step-input limit (256 KB), so an oversize output can be sent as an input;
  // every output inline (no blob store: test/integration/blob-outputs.test.ts has it), so the limit applies.
  env = await startTestEnv({
    env: { PANTHEON_MAX_RESULT_BYTES: '100000', PANTHEON_BLOB_THRESHOLD_BYTES: '0' },
  });
});
afterAll(async () => {
  await env?.close();
});

async function failure(step: Record<string, unknown>) {
  const handle = await env.startPipeline({
    name: 'results',
    project: 'drills',
    steps: [{ id: 's', ...step }],
  });
  const err = await handle.result().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return String((err as WorkflowFailedError).cause?.message);
}

test('a Python exception named in nonRetryableErrors fails at once, with its type and message', async () => {
  const marker = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-results-')), 'attempts');
  const message = await failure({
    task: 'pantheon_tasks.testkit:fail',
    args: [5, marker],
    nonRetryableErrors: ['RuntimeError'],
  });
  expect(message).toBe('step "s" failed: RuntimeError: planned failure 1 of 5');
  expect(fs.readFileSync(marker, 'utf8').trim().split('\n')).toHaveLength(1);
});

test('an output above the result limit fails non-retryably, naming its size and the limit', async () => {
  const big = 'x'.repeat(env.config.maxResultBytes + 10);
  const message = await failure({ task: 'pantheon_tasks.testkit:echo', args: [big] });
  expect(message).toMatch(
    new RegExp(
      `StepOutputRejected: output of pantheon_tasks.testkit:echo is \\d+ bytes, above the ${env.config.maxResultBytes}-byte result limit`,
    ),
  );
});
