/**
 * The embedded Temporal's SQLite settings (WAL, synchronous=NORMAL:
 * bench/README.md) lose nothing to a crash of the server process: kill -9 of
 * the dev server's process group while a step runs, then `stackUp`, which
 * starts it again on the same database. The pipeline in flight resumes and
 * completes, every step once, without restarting the worker. (What WAL with
 * NORMAL may lose is the last commits before a power loss or OS crash, which a
 * test on one machine cannot stage.)
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { loadStackConfig } from '../../stack/config';
import { stackIsUp, stackUp } from '../../stack/local-stack';
import { groupAlive } from '../../stack/processes';
import type { PipelineResult } from '../../core/schemas/pipeline-spec';
import { startTestEnv, uniqueId, waitUntil, type TestEnv } from '../helpers/test-env';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

test('kill -9 of the Temporal dev server mid-pipeline, then stack up: the pipeline completes', async () => {
  const stack = loadStackConfig();
  const marker = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-temporal-kill-')), 'effects.txt');
  const handle = await env.startPipeline({
    name: 'temporal-restart',
    project: uniqueId('temporal-restart'),
    steps: [
      { id: 'first', task: 'pantheon_tasks.testkit:append_line', args: [marker, 'first'] },
      {
        id: 'long',
        task: 'pantheon_tasks.testkit:append_line',
        args: [marker, 'long', 6],
        dependsOn: ['first'],
      },
      { id: 'last', task: 'pantheon_tasks.testkit:append_line', args: [marker, 'last'], dependsOn: ['long'] },
    ],
  });
  await waitUntil(
    'the long step to run',
    async () => ((await env.progress(handle)).steps.long?.status === 'running' ? true : undefined),
    120_000,
  );

  const temporal = Number(fs.readFileSync(path.join(stack.pidDir, 'temporal.pid'), 'utf8'));
  process.kill(-temporal, 'SIGKILL');
  await waitUntil('the dev server to be gone', async () => (groupAlive(temporal) ? undefined : true));
  await stackUp(stack);
  expect(stackIsUp(stack)).toBe(true);

  const result = (await handle.result()) as PipelineResult;
  expect(result.status).toBe('succeeded');
  // Every step's side effect once, in order: the history written before the kill was all there.
  expect(fs.readFileSync(marker, 'utf8').trim().split('\n')).toEqual(['first', 'long', 'last']);
}, 600_000);
