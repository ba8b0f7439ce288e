/**
 * Code-defined agents and pipelines on the real stack: the example pipelines,
 * agent steps in a JSON spec, fallback agents, and agent performance feeding
 * allocation.
 */
import { WorkflowFailedError } from '@temporalio/client';
import { agentPerformanceQuery, agentPerformanceWorkflowId } from '../../core/messages/agent-performance';
import type { PipelineResult } from '../../core/schemas/pipeline-spec';
import { startTestEnv, uniqueId, waitUntil, type TestEnv } from '../helpers/test-env';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

const overlaps = (a: { startedAtMs?: number; finishedAtMs?: number }, b: typeof a) =>
  a.startedAtMs! < b.finishedAtMs! && b.startedAtMs! < a.finishedAtMs!;

describe('code-defined pipelines', () => {
  test('research report: gather → three analysts in parallel → reviewer → writer', async () => {
    const handle = await env.startCodePipeline('researchReport', {
      project: 'acme',
      input: { topic: 'battery storage risk and prices' },
    });
    const result = (await handle.result()) as PipelineResult;

    expect(result.status).toBe('succeeded');
    expect(result.stepOrder).toEqual([
      'gather',
      'analyze-market',
      'analyze-risk',
      'analyze-technology',
      'review',
      'write',
    ]);
    const { steps } = result;
    for (const id of result.stepOrder) expect(steps[id]).toMatchObject({ status: 'succeeded', attempts: 1 });
    expect(steps['analyze-risk']).toMatchObject({ agent: 'analyst', output: { lens: 'risk' } });
    // Fan-out really ran in parallel, and the join waited for every branch.
    expect(overlaps(steps['analyze-market']!, steps['analyze-risk']!)).toBe(true);
    const lastAnalyst = Math.max(
      ...['market', 'risk', 'technology'].map((l) => steps[`analyze-${l}`]!.finishedAtMs!),
    );
    expect(steps.review!.scheduledAtMs!).toBeGreaterThanOrEqual(lastAnalyst);
    const output = result.output as { markdown: string };
    expect(output.markdown).toMatch(/^# battery storage risk and prices\n/);
    expect(output.markdown).toMatch(/## Risk \(score \d+\)/);
    // Agent steps are measured on the Ray side.
    expect(steps.gather!.peakMemoryMb).toBeGreaterThan(10);
    expect(steps.gather!.cpuSeconds).toBeGreaterThan(0);
    expect(result.usage.agents.analyst).toMatchObject({ steps: 3, attempts: 3 });
  });

  test('invalid input fails at once, naming the field', async () => {
    const handle = await env.startCodePipeline('researchReport', { project: 'acme', input: { topic: '' } });
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(String((err as WorkflowFailedError).cause?.message)).toMatch(
      /invalid pipeline input: input\.topic:/,
    );
  });

  test('the same pipeline as a JSON spec, with agent steps and step references', async () => {
    const result = await env.runPipeline({
      name: 'research-json',
      project: 'acme',
      steps: [
        { id: 'gather', agent: 'gatherer', args: ['grid congestion', 4] },
        { id: 'market', agent: 'analyst', args: [{ $step: 'gather' }, 'market'] },
        { id: 'risk', agent: 'analyst', args: [{ $step: 'gather' }, 'risk'] },
        {
          id: 'review',
          agent: 'reviewer',
          args: [{ market: { $step: 'market' }, risk: { $step: 'risk' } }],
        },
        { id: 'write', agent: 'writer', args: ['grid congestion', { $step: 'review' }] },
        { id: 'title', task: 'pantheon_tasks.testkit:echo', args: [{ $step: 'write', path: 'words' }] },
      ],
    });
    expect(result.status).toBe('succeeded');
    expect(result.steps.gather!.output).toHaveLength(4);
    expect(result.steps.write).toMatchObject({
      agent: 'writer',
      output: { markdown: expect.stringMatching(/^# grid congestion/) },
    });
    expect(result.steps.title!.output).toBe((result.steps.write!.output as { words: number }).words);
  });

  test('an unknown agent in a JSON spec is refused before anything runs, naming the step', async () => {
    const handle = await env.startPipeline({
      name: 'bad',
      project: 'acme',
      steps: [{ id: 'a', agent: 'oracle' }],
    });
    const err = await handle.result().catch((e: unknown) => e);
    expect(String((err as WorkflowFailedError).cause?.message)).toMatch(
      /steps\[0\]\.agent: unknown agent "oracle"/,
    );
  });
});

describe('fallback agents', () => {
  test('a step whose agent exhausts its retries runs with the fallback agent, and says so', async () => {
    const handle = await env.startCodePipeline('ticketTriage', {
      project: 'support',
      input: {
        tickets: ['login fails after reset', 'billing and login both broken', 'the outage page is blank'],
      },
    });
    const result = (await handle.result()) as PipelineResult;
    expect(result.status).toBe('succeeded');
    expect(result.steps['classify-0']).toMatchObject({
      agent: 'strict-classifier',
      output: { category: 'login' },
    });
    expect(result.steps['classify-0']!.fallbackFrom).toBeUndefined();
    expect(result.steps['classify-1']).toMatchObject({
      status: 'succeeded',
      attempts: 1,
      agent: 'overlap-classifier',
      output: { method: 'overlap' },
      fallbackFrom: {
        agent: 'strict-classifier',
        attempts: 2,
        error: { type: 'ValueError', message: expect.stringMatching(/ambiguous ticket/) },
      },
    });
    expect(result.output).toMatchObject({ total: 3 });
    // The usage report counts the primary's attempts and the fallback's.
    expect(result.usage.steps['classify-1']!.attempts).toBe(3);
    // Both tries are visible in the Web UI: the primary's activity and the fallback's.
    const history = await handle.fetchHistory();
    const ids = history.events
      ?.map((e) => e.activityTaskScheduledEventAttributes?.activityId)
      .filter((id): id is string => id?.startsWith('step:classify-1') ?? false);
    expect(ids).toEqual(['step:classify-1', 'step:classify-1~overlap-classifier']);
  });

  test('without a fallback, an exhausted step fails the pipeline', async () => {
    const handle = await env.startPipeline({
      name: 'no-fallback',
      project: 'support',
      steps: [{ id: 'c', agent: 'overlap-classifier', args: ['x', []], retry: { maximumAttempts: 1 } }],
    });
    const err = await handle.result().catch((e: unknown) => e);
    expect(String((err as WorkflowFailedError).cause?.message)).toMatch(/step "c" failed: ValueError/);
  });
});

describe('agent performance feeds allocation', () => {
  test('an agent’s observed peak memory sizes its next steps, and the record outlives the worker', async () => {
    const project = uniqueId('perf');
    const first = (await (
      await env.startCodePipeline('batchScoring', { project, input: { items: [1, 2], indexMb: 160 } })
    ).result()) as PipelineResult;
    expect(first.status).toBe('succeeded');
    const peak = first.steps.index!.peakMemoryMb!;
    expect(peak).toBeGreaterThan(160);

    // The record lives in Temporal (a workflow per agent), not in this worker's memory.
    const record = await waitUntil('the indexer record to include the run', async () => {
      const summary = await env.client.workflow
        .getHandle(agentPerformanceWorkflowId('indexer'))
        .query(agentPerformanceQuery);
      return summary.peakMemoryMb !== null && summary.peakMemoryMb >= peak ? summary : undefined;
    });
    expect(record.runs).toBeGreaterThanOrEqual(1);

    env.worker!.shutdown();
    await env.startWorker();
    const second = (await (
      await env.startCodePipeline('batchScoring', { project, input: { items: [3], indexMb: 160 } })
    ).result()) as PipelineResult;
    expect(second.steps.index).toMatchObject({ status: 'succeeded', allocation: 'observed' });
    expect(second.steps.index!.resources!.memoryMb).toBeGreaterThanOrEqual(record.peakMemoryMb! * 1.25);
    expect(second.usage.agents.indexer!.observed).toMatchObject({
      agent: 'indexer',
      peakMemoryMb: expect.any(Number),
    });

    // An explicit request still wins over what was learned.
    const explicit = await env.runPipeline({
      name: 'explicit',
      project,
      steps: [{ id: 'index', agent: 'indexer', args: [['a b'], 8], resources: { memoryMb: 700 } }],
    });
    expect(explicit.steps.index).toMatchObject({
      allocation: 'explicit',
      resources: { cpus: 1, memoryMb: 700 },
    });
  });
});
