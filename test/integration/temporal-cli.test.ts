/**
 * The README's promise: a pipeline started with the `temporal` CLI binary from
 * the virtualenv, and its result read back with `temporal workflow result`.
 */
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { loadStackConfig, REPO_ROOT } from '../../stack/config';
import { startTestEnv, uniqueId, waitUntil, type TestEnv } from '../helpers/test-env';

const run = promisify(execFile);
const TEMPORAL = path.join(REPO_ROOT, '.venv', 'bin', 'temporal');

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

test('temporal workflow start + temporal workflow result run the documented spec', async () => {
  const workflowId = uniqueId('cli');
  const input = JSON.stringify({
    name: 'demo',
    project: 'acme',
    priority: 3,
    steps: [
      { id: 'a', task: 'pantheon_tasks.testkit:echo', args: ['hi'], resources: { cpus: 1, memoryMb: 100 } },
      { id: 'b', task: 'pantheon_tasks.testkit:echo', args: [{ $step: 'a' }], dependsOn: ['a'] },
    ],
  });
  const address = ['--address', env.config.temporal.address];
  await run(TEMPORAL, [
    'workflow',
    'start',
    ...address,
    '--type',
    'pipeline',
    '--task-queue',
    'pantheon',
    '--workflow-id',
    workflowId,
    '--input',
    input,
  ]);
  const { stdout } = await run(TEMPORAL, [
    'workflow',
    'result',
    ...address,
    '--workflow-id',
    workflowId,
    '--output',
    'json',
  ]);
  const answer = JSON.parse(stdout) as {
    status: string;
    result: { steps: Record<string, { status: string; output: unknown; attempts: number; node: string }> };
  };
  expect(answer.status).toBe('COMPLETED');
  expect(answer.result.steps.a).toMatchObject({ status: 'succeeded', output: 'hi', attempts: 1 });
  expect(answer.result.steps.b).toMatchObject({ status: 'succeeded', output: 'hi', attempts: 1 });
  expect(answer.result.steps.b?.node).toMatch(/^[0-9a-f]{56}$/);
});

test("the dev server's database runs with the stack's SQLite settings (WAL journal)", async () => {
  // Read-only, beside the running server: WAL is what lets a reader in while it writes.
  const db = path.join(loadStackConfig().stateDir, 'temporal.db');
  const { stdout } = await run(path.join(REPO_ROOT, '.venv', 'bin', 'python'), [
    '-c',
    'import sqlite3, sys; print(sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True).execute("pragma journal_mode").fetchone()[0])',
    db,
  ]);
  expect(stdout.trim()).toBe('wal');
});

test('temporal workflow stack shows where a running pipeline waits, in its TypeScript files and lines', async () => {
  // The worker's bundle maps lines to files but carries no source text (stack/workflow-bundle.ts says why).
  const bundle = fs.readFileSync(process.env.PANTHEON_WORKFLOW_BUNDLE!, 'utf8');
  const inlineMap = bundle.slice(bundle.lastIndexOf('base64,') + 'base64,'.length);
  const sourceMap = JSON.parse(Buffer.from(inlineMap, 'base64').toString()) as {
    sources: string[];
    sourcesContent?: unknown[];
  };
  expect(sourceMap.sourcesContent).toBeUndefined();
  expect(sourceMap.sources.some((s) => s.endsWith(path.join('workflows', 'pipeline', 'pipeline.ts')))).toBe(true);

  const handle = await env.startPipeline({
    name: 'stack',
    project: 'acme',
    steps: [{ id: 'nap', task: 'pantheon_tasks.testkit:sleep', args: [60] }],
  });
  const address = ['--address', env.config.temporal.address];
  let stack = '';
  await waitUntil('the pipeline waits on its step', async () => {
    const { stdout } = await run(TEMPORAL, ['workflow', 'stack', ...address, '--workflow-id', handle.workflowId]);
    stack = stdout;
    return stdout.includes('step-execution.ts') ? true : undefined;
  });
  expect(stack).toMatch(/at DagPipeline\.runToEnd \([^)]*workflows\/pipeline\/pipeline\.ts:\d+:\d+\)/);
  // Cancelled, not terminated: the step's Ray task stops too instead of holding a CPU for a minute.
  await handle.cancel();
  await expect(handle.result()).rejects.toThrow();
});
