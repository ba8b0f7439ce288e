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
import { failedPipelineResult } from '../helpers/workflow-failure';
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

test('20 outputs of 1 MB and a fan-in reading them all: a small result, each output byte for byte', async () => {
  const parts = Array.from({ length: 20 }, (_, i) => `part${i}`);
  const handle = await env.startPipeline({
    name: 'fan-in-1mb',
    project: 'drills',
    steps: [
      // Each part is its own text, so each is its own blob.
      ...parts.map((id, i) => ({ id, task: 'pantheon_tasks.testkit:text', args: [1_000_000, `${i}-`] })),
      {
        id: 'all',
        task: 'pantheon_tasks.testkit:measure',
        args: [parts.map((p) => ({ $step: p }))],
        resources: { memoryMb: 512 },
      },
    ],
  });
  const result = (await handle.result()) as PipelineResult;
  expect(result.status).toBe('succeeded');
  // 20 strings of 1,000,000 characters as one JSON list: 20 × 1,000,002 plus 19 separators and 2 brackets.
  expect(result.steps.all?.output).toBe(20 * 1_000_002 + 19 * 2 + 2);
  expect(JSON.stringify(result).length).toBeLessThan(50_000);

  const cliEnv = { TEMPORAL_ADDRESS: env.config.temporal.address };
  for (const [i, part] of parts.entries()) {
    const printed = await runPantheon(['output', handle.workflowId, part], cliEnv);
    expect(printed.code).toBe(0);
    const expected = JSON.stringify(`${i}-`.repeat(1_000_000).slice(0, 1_000_000));
    expect(printed.stdout === `${expected}\n`).toBe(true);
  }
}, 600_000);

test('a reference to a blob the store does not hold fails the step at once, naming it', async () => {
  const missing = { $blob: `sha256:${'0'.repeat(64)}`, bytes: 2, preview: '""' };
  const handle = await env.startPipeline({
    name: 'missing-blob',
    project: 'drills',
    steps: [{ id: 'read', task: 'pantheon_tasks.testkit:measure', args: [missing] }],
  });
  const result = await failedPipelineResult(handle);
  expect(result.steps.read).toMatchObject({ status: 'failed', attempts: 1 });
  expect(result.steps.read?.error?.message).toMatch(/blob sha256:0{64} is not in the store/);
}, 300_000);
