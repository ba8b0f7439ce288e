/**
 * A Ray head that dies mid-pipeline is recovered without hands: kill -9 of the
 * head's whole process group (GCS, raylet, dashboard, the dispatcher actor's
 * worker) while a step runs, then `stackUp` — what `npm run stack:up` calls —
 * which starts a new head, stops what was left of the old cluster (worker
 * nodes, dispatcher host) and starts it again. The worker is not restarted:
 * its bridge finds the head gone, is started again on the next call, and the
 * step that was running is submitted again to a new dispatcher (the
 * at-least-once edge of docs/ray-execution.md); the pipeline completes with
 * every step succeeded.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadStackConfig } from '../../stack/config';
import { stackIsUp, stackUp } from '../../stack/local-stack';
import { groupAlive } from '../../stack/processes';
import { listRayNodes } from '../../stack/ray-cluster-state';
import type { PipelineResult } from '../../core/schemas/pipeline-spec';
import { startTestEnv, uniqueId, waitUntil, type TestEnv } from '../helpers/test-env';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

test(
  'kill -9 of the Ray head mid-pipeline, then stack up: the pipeline completes, worker untouched',
  async () => {
    const stack = loadStackConfig();
    const handle = await env.startPipeline({
      name: 'head-recovery',
      project: uniqueId('head-recovery'),
      steps: [
        { id: 'before', task: 'pantheon_tasks.testkit:echo', args: ['first'] },
        { id: 'long', task: 'pantheon_tasks.testkit:sleep', args: [10, 'slept'], dependsOn: ['before'] },
        { id: 'after', task: 'pantheon_tasks.testkit:echo', args: [{ $step: 'long' }] },
      ],
    });
    await waitUntil(
      'the long step to run on Ray',
      async () => ((await env.progress(handle)).steps.long?.status === 'running' ? true : undefined),
      120_000,
    );
    const bridgeBefore = env.worker!.bridge.pid;
    const oldNodeIds = new Set((await listRayNodes(stack.ray.dashboardUrl)).map((n) => n.nodeId));

    const head = Number(fs.readFileSync(path.join(stack.pidDir, 'ray-head.pid'), 'utf8'));
    process.kill(-head, 'SIGKILL');
    await waitUntil('the head process group to be gone', async () => (groupAlive(head) ? undefined : true));

    await stackUp(stack);
    expect(stackIsUp(stack)).toBe(true);
    // A new cluster: none of the old nodes is in it, and its worker nodes joined.
    const nodes = await listRayNodes(stack.ray.dashboardUrl);
    expect(nodes.filter((n) => n.alive && !n.isHead).length).toBeGreaterThan(0);
    expect(nodes.some((n) => oldNodeIds.has(n.nodeId))).toBe(false);

    const result = (await handle.result()) as PipelineResult;
    expect(result.status).toBe('succeeded');
    expect(result.steps.before).toMatchObject({ status: 'succeeded', output: 'first' });
    expect(result.steps.long).toMatchObject({ status: 'succeeded', output: 'slept' });
    expect(result.steps.after).toMatchObject({ status: 'succeeded', output: 'slept' });
    // The same worker ran it to the end; its bridge is a new process, connected to the new head.
    expect(env.worker!.bridge.pid).toBeDefined();
    expect(env.worker!.bridge.pid).not.toBe(bridgeBefore);
    // A new head, new worker nodes and a restart of every Ray process: minutes on a loaded host.
  },
  20 * 60_000,
);
