/**
 * Large step outputs by reference (ray-tasks/pantheon_runtime/blob_store.py):
 * a step returning 100 MB succeeds, history and the pipeline's result carry a
 * small reference, the next step is given the whole value on Ray (the data
 * never passes through the workflow), and `pantheon output` prints it whole.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isBlobRef } from '../../core/schemas/blob-ref';
import type { PipelineResult } from '../../core/schemas/pipeline-spec';
import { runPantheon } from '../helpers/pantheon-cli';
import { startTestEnv, type TestEnv } from '../helpers/test-env';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

const HUNDRED_MB = 100_000_000;

test('a 100 MB output is kept by reference, handed whole to the next step, and printed by pantheon output', async () => {
  const handle = await env.startPipeline({
    name: 'large-output',
    project: 'drills',
    steps: [
      // The text itself, the JSON encoding and the hash need a few copies of it in memory.
      { id: 'big', task: 'pantheon_tasks.testkit:text', args: [HUNDRED_MB], resources: { memoryMb: 1024 } },
      {
        id: 'size',
        task: 'pantheon_tasks.testkit:measure',
        args: [{ $step: 'big' }],
        resources: { memoryMb: 1024 },
      },
      { id: 'small', task: 'pantheon_tasks.testkit:echo', args: ['inline'] },
    ],
  });
  const result = (await handle.result()) as PipelineResult;
  expect(result.status).toBe('succeeded');
  const ref = result.steps.big?.output;
  expect(isBlobRef(ref)).toBe(true);
  expect(ref).toMatchObject({ bytes: HUNDRED_MB + 2, preview: `"${'x'.repeat(199)}` });
  // The next step measured the whole value, not the reference.
  expect(result.steps.size?.output).toBe(HUNDRED_MB + 2);
  expect(result.steps.small?.output).toBe('inline');
  // Neither the result nor the history holds the data.
  expect(JSON.stringify(result).length).toBeLessThan(50_000);
  const { historySize } = await handle.describe();
  expect(historySize).toBeLessThan(1_000_000);

  const cliEnv = { TEMPORAL_ADDRESS: env.config.temporal.address };
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-output-')), 'big.json');
  const big = await runPantheon(['output', handle.workflowId, 'big', '--out', out], cliEnv);
  expect(big.code).toBe(0);
  expect(fs.statSync(out).size).toBe(HUNDRED_MB + 3); // the JSON string and a newline
  const fd = fs.openSync(out, 'r');
  const head = Buffer.alloc(4);
  fs.readSync(fd, head, 0, 4, 0);
  fs.closeSync(fd);
  expect(head.toString()).toBe('"xxx');
  fs.rmSync(path.dirname(out), { recursive: true });

  const small = await runPantheon(['output', handle.workflowId, 'small'], cliEnv);
  expect({ code: small.code, stdout: small.stdout }).toEqual({ code: 0, stdout: '"inline"\n' });
  const unknown = await runPantheon(['output', handle.workflowId, 'nope'], cliEnv);
  expect(unknown.code).toBe(1);
  expect(unknown.stderr).toMatch(/has no step "nope" that ran/);
}, 600_000);
