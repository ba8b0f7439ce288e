/**
 * What a person watching a pipeline sees: the progress query, the search
 * attributes, the static summary and current details in the Web UI, the
 * summary of each step activity, and the usage report at the end.
 */
import type { WorkflowHandle } from '@temporalio/client';
import { workflowMetadataQuery } from '@temporalio/workflow';
import type { PipelineResult } from '../../core/schemas/pipeline-spec';
import { startTestEnv, uniqueId, waitUntil, type TestEnv } from '../helpers/test-env';

const SLEEP = 'pantheon_tasks.testkit:sleep';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

async function listIds(query: string): Promise<string[]> {
  const ids: string[] = [];
  for await (const wf of env.client.workflow.list({ query })) ids.push(wf.workflowId);
  return ids;
}

async function statusAttribute(handle: WorkflowHandle): Promise<unknown> {
  const description = await handle.describe();
  return description.searchAttributes.PantheonStatus?.[0];
}

describe('monitoring', () => {
  test('progress shows each step queued, then running with its start, attempts and node', async () => {
    const pipelineName = uniqueId('progress');
    const handle = await env.startPipeline({
      name: pipelineName,
      project: 'watch',
      steps: Array.from({ length: 6 }, (_, i) => ({ id: `s${i}`, task: SLEEP, args: [4, i] })),
    });
    // Six steps on four CPUs: some run while the others wait in Temporal's queue.
    const live = await waitUntil('running and queued steps side by side', async () => {
      const p = await env.progress(handle);
      const statuses = Object.values(p.steps).map((s) => s.status);
      return statuses.includes('running') && statuses.includes('queued') ? p : undefined;
    });
    expect(live.status).toBe('running');
    for (const step of Object.values(live.steps)) {
      if (step.status === 'running') {
        expect(step.attempts).toBe(1);
        expect(step.startedAtMs).toBeGreaterThanOrEqual(step.scheduledAtMs!);
      }
      if (step.status === 'queued') expect(step.startedAtMs).toBeUndefined();
    }

    // Search attributes are current while it runs…
    await waitUntil('the running pipeline to be listed', async () => {
      const ids = await listIds(
        `PantheonPipeline = "${pipelineName}" AND PantheonStatus = "running" AND PantheonProject = "watch"`,
      );
      return ids.includes(handle.workflowId) ? true : undefined;
    });
    // …and so are the current details the Web UI shows.
    const metadata = await handle.query(workflowMetadataQuery);
    expect(metadata.currentDetails).toMatch(
      new RegExp(`\\*\\*${pipelineName}\\*\\* · project watch · priority 3 · running`),
    );
    expect(metadata.currentDetails).toMatch(/^- `s0` (queued|running)/m);

    const result = (await handle.result()) as PipelineResult;
    await waitUntil('the finished pipeline to be listed as succeeded', async () => {
      const ids = await listIds(`PantheonPipeline = "${pipelineName}" AND PantheonStatus = "succeeded"`);
      return ids.includes(handle.workflowId) ? true : undefined;
    });
    for (const step of Object.values(result.steps)) {
      expect(step).toMatchObject({
        status: 'succeeded',
        attempts: 1,
        node: expect.stringMatching(/^[0-9a-f]{56}$/),
      });
      expect(step.runningMs).toBeGreaterThanOrEqual(3900);
      expect(step.queuedMs).toBeGreaterThanOrEqual(0);
    }

    // The static summary the starter gave, and a summary per step activity.
    const description = await handle.describe();
    expect(await description.staticSummary()).toBe(`pipeline ${pipelineName} for watch: 6 steps`);
    const history = await handle.fetchHistory();
    const summaries = history.events
      ?.filter((e) => e.activityTaskScheduledEventAttributes?.activityId?.startsWith('step:'))
      .map((e) => e.userMetadata?.summary?.data && Buffer.from(e.userMetadata.summary.data).toString());
    expect(summaries).toContain('"s0: pantheon_tasks.testkit:sleep"');
  });

  test('a failed pipeline is marked failed in its search attributes', async () => {
    const handle = await env.startPipeline({
      name: uniqueId('failing'),
      project: 'watch',
      steps: [
        {
          id: 'x',
          task: 'pantheon_tasks.testkit:fail',
          args: [9, '/tmp/pantheon-never-there/marker'],
          retry: { maximumAttempts: 1 },
        },
      ],
    });
    await handle.result().catch(() => undefined);
    await waitUntil('PantheonStatus=failed', async () =>
      (await statusAttribute(handle)) === 'failed' ? true : undefined,
    );
  });

  test('the usage report gives CPU-seconds, memory, queue wait and attempts per step and in total', async () => {
    const handle = await env.startCodePipeline('batchScoring', {
      project: 'watch',
      input: { items: ['a', 'b', 'c'], indexMb: 32 },
    });
    const result = (await handle.result()) as PipelineResult;
    const { usage } = result;
    expect(Object.keys(usage.steps).sort()).toEqual(['combine', 'index', 'score-0', 'score-1', 'score-2']);
    for (const [id, step] of Object.entries(usage.steps)) {
      expect(step).toMatchObject({ attempts: 1, cpuSecondsMeasured: true, agent: result.steps[id]!.agent });
      expect(step.cpuSeconds).toBeGreaterThanOrEqual(0);
      expect(step.peakMemoryMb).toBeGreaterThan(10);
      expect(step.temporalQueueMs).toBeGreaterThanOrEqual(0);
      expect(step.runningMs).toBeGreaterThan(0);
    }
    expect(usage.steps.index!.peakMemoryMb).toBeGreaterThan(32);
    expect(usage.totals).toMatchObject({ steps: 5, attempts: 5 });
    expect(usage.totals.cpuSeconds).toBeCloseTo(
      Object.values(usage.steps).reduce((sum, s) => sum + s.cpuSeconds, 0),
      2,
    );
    expect(usage.agents.scorer).toMatchObject({ steps: 3, attempts: 3 });
  });
});
