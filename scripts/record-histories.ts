/**
 * Records the event histories the replay tests (test/replay) check today's
 * workflow code against: real runs of every shipped workflow on the local
 * stack, including live updates and a fallback.
 *
 *   npx tsx scripts/stack.ts up && npx tsx scripts/record-histories.ts
 *   npx tsx scripts/record-histories.ts --only pipeline-dag,research-report --suffix=-history-budget
 *
 * `--only` saves just the named recordings and `--suffix` saves them under new
 * names: how a history recorded before a `patched()` change is kept beside one
 * recorded after it, so both paths keep replaying.
 *
 * Re-record when a workflow changes on purpose (and version it with
 * `patched()` if runs of the old code may still be open); never to silence a
 * failing replay test — that failure is the non-determinism it exists to catch.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parseArgs } from 'node:util';
import type { WorkflowHandle } from '@temporalio/client';
import { loadStackConfig, localRayClientEnv, REPO_ROOT } from '../stack/config';
import { agentPerformanceWorkflowId } from '../core/messages/agent-performance';
import {
  addStepUpdate,
  cancelStepUpdate,
  setPriorityUpdate,
  setStepResourcesUpdate,
} from '../core/messages/pipeline';
import { startTestEnv, waitUntil, type TestEnv } from '../test/helpers/test-env';

const OUT_DIR = path.join(REPO_ROOT, 'test', 'replay', 'histories');
const SLEEP = 'pantheon_tasks.testkit:sleep';
const ECHO = 'pantheon_tasks.testkit:echo';

const { values: options } = parseArgs({
  options: { only: { type: 'string' }, suffix: { type: 'string', default: '' } },
});
const only = options.only === undefined ? undefined : new Set(options.only.split(','));
const saved = new Set<string>();

/** The history in the Temporal CLI's JSON form (`temporal workflow show --output json`), which SDKs replay from. */
async function save(
  recording: string,
  handle: WorkflowHandle,
  address: string,
  runId?: string,
): Promise<void> {
  if (only !== undefined && !only.has(recording)) return;
  saved.add(recording);
  const name = `${recording}${options.suffix}`;
  const json = execFileSync(
    path.join(REPO_ROOT, '.venv', 'bin', 'temporal'),
    [
      'workflow',
      'show',
      '--workflow-id',
      handle.workflowId,
      ...(runId ? ['--run-id', runId] : []),
      '--address',
      address,
      '--output',
      'json',
    ],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  );
  const events = (JSON.parse(json) as { events?: unknown[] }).events?.length ?? 0;
  const file = path.join(OUT_DIR, `${name}.json`);
  fs.writeFileSync(file, json.endsWith('\n') ? json : `${json}\n`);
  process.stderr.write(`[record] ${name}: ${events} events → ${path.relative(REPO_ROOT, file)}\n`);
}

async function settled(handle: WorkflowHandle): Promise<WorkflowHandle> {
  await handle.result().catch(() => undefined);
  return handle;
}

async function statusOf(env: TestEnv, handle: WorkflowHandle, step: string): Promise<string | undefined> {
  return (await env.progress(handle)).steps[step]?.status;
}

async function main(): Promise<void> {
  const stack = loadStackConfig();
  process.env.TEMPORAL_ADDRESS ??= stack.temporal.address;
  process.env.RAY_ADDRESS ??= stack.ray.address;
  process.env.RAY_DASHBOARD_URL ??= stack.ray.dashboardUrl;
  if (process.env.RAY_AUTH_MODE === undefined) Object.assign(process.env, localRayClientEnv(stack));
  fs.mkdirSync(OUT_DIR, { recursive: true });
  const env = await startTestEnv();
  try {
    const dag = env.startPipeline({
      name: 'replay-dag',
      project: 'replay',
      steps: [
        { id: 'gather', agent: 'gatherer', args: ['grid storage', 3] },
        { id: 'market', agent: 'analyst', args: [{ $step: 'gather' }, 'market'] },
        { id: 'risk', agent: 'analyst', args: [{ $step: 'gather' }, 'risk'] },
        { id: 'review', agent: 'reviewer', args: [{ market: { $step: 'market' }, risk: { $step: 'risk' } }] },
        { id: 'echo', task: ECHO, args: [{ $step: 'review', path: 'approved' }] },
      ],
    });
    const failFast = env.startPipeline({
      name: 'replay-fail-fast',
      project: 'replay',
      steps: [
        {
          id: 'bad',
          task: 'pantheon_tasks.examples:analyze',
          args: [[], 'astrology'],
          nonRetryableErrors: ['ValueError'],
        },
        { id: 'slow', task: SLEEP, args: [20] },
        { id: 'after', task: ECHO, args: [{ $step: 'bad' }] },
      ],
    });
    const invalid = env.startPipeline({
      name: 'replay-invalid',
      project: 'replay',
      steps: [{ id: 'a', agent: 'nobody' }],
    });
    const research = env.startCodePipeline('researchReport', {
      project: 'replay',
      input: { topic: 'storage' },
    });
    const triage = env.startCodePipeline('ticketTriage', {
      project: 'replay',
      input: { tickets: ['login broken', 'billing and outage'] },
    });
    const scoring = env.startCodePipeline('batchScoring', {
      project: 'replay',
      input: { items: [1, 2], indexMb: 16 },
    });
    // Map steps: over another step's output, and one whose items fail (reported by index).
    const mapped = env.startPipeline({
      name: 'replay-map',
      project: 'replay',
      failurePolicy: 'continue',
      steps: [
        { id: 'list', task: 'pantheon_tasks.testkit:numbers', args: [50] },
        { id: 'each', task: ECHO, map: { over: { $step: 'list' }, concurrency: 4 } },
        {
          id: 'bad',
          task: 'pantheon_tasks.testkit:record_item',
          args: [path.join(REPO_ROOT, '.state', 'replay-map-items.txt'), [2]],
          map: { over: [1, 2, 3], maxItemAttempts: 1, maxFailedItems: 3 },
        },
      ],
    });
    const bulk = env.startCodePipeline('bulkScoring', { project: 'replay', input: { count: 300 } });
    // A code pipeline's fan-out wider than its window of steps in flight: the others wait as pending.
    const windowed = env.startCodePipeline('batchScoring', {
      project: 'replay',
      maxInFlightSteps: 2,
      input: { items: [1, 2, 3, 4], indexMb: 16 },
    });
    // A pipeline that continues as new twice, carrying an output its last step reads.
    const continued = await env.startPipeline({
      name: 'replay-continued',
      project: 'replay',
      maxInFlightSteps: 4,
      continueAsNewAfterSteps: 10,
      steps: [
        ...Array.from({ length: 24 }, (_, i) => ({ id: `s${i}`, task: ECHO, args: [i] })),
        { id: 'last', task: ECHO, args: [{ $step: 's0' }], dependsOn: ['s23'] },
      ],
    });
    const continuedFirstRun = (await continued.describe()).runId;

    // Live updates: every kind, on one pipeline.
    const updated = await env.startPipeline({
      name: 'replay-updates',
      project: 'replay',
      priority: 4,
      steps: [
        { id: 'gate', task: SLEEP, args: [4, 'g'] },
        { id: 'resized', task: ECHO, args: ['r'], dependsOn: ['gate'] },
        { id: 'doomed', task: SLEEP, args: [120], dependsOn: ['gate'] },
        { id: 'doomed-child', task: ECHO, args: [{ $step: 'doomed' }] },
      ],
    });
    await waitUntil('gate to be scheduled', async () =>
      ['queued', 'running'].includes((await statusOf(env, updated, 'gate')) ?? '') ? true : undefined,
    );
    await updated.executeUpdate(setPriorityUpdate, { args: [{ priority: 2 }] });
    await updated.executeUpdate(setStepResourcesUpdate, {
      args: [{ stepId: 'resized', resources: { cpus: 1, memoryMb: 200 } }],
    });
    await updated.executeUpdate(addStepUpdate, {
      args: [{ step: { id: 'added', task: ECHO, args: [{ $step: 'gate' }] } }],
    });
    await waitUntil(
      'doomed to run',
      async () => ((await statusOf(env, updated, 'doomed')) === 'running' ? true : undefined),
      120_000,
    );
    await updated.executeUpdate(cancelStepUpdate, { args: [{ stepId: 'doomed' }] });

    await save('pipeline-dag', await settled(await dag), stack.temporal.address);
    await save('pipeline-fail-fast', await settled(await failFast), stack.temporal.address);
    await save('pipeline-invalid-spec', await settled(await invalid), stack.temporal.address);
    await save('pipeline-live-updates', await settled(updated), stack.temporal.address);
    await save('research-report', await settled(await research), stack.temporal.address);
    await save('ticket-triage-fallback', await settled(await triage), stack.temporal.address);
    await save('batch-scoring', await settled(await scoring), stack.temporal.address);
    await save('pipeline-map', await settled(await mapped), stack.temporal.address);
    await save('bulk-scoring', await settled(await bulk), stack.temporal.address);
    await save('batch-scoring-window', await settled(await windowed), stack.temporal.address);
    await settled(continued);
    await save('pipeline-continued-first-run', continued, stack.temporal.address, continuedFirstRun);
    await save('pipeline-continued-last-run', continued, stack.temporal.address);
    await save(
      'agent-performance',
      env.client.workflow.getHandle(agentPerformanceWorkflowId('analyst')),
      stack.temporal.address,
    );
  } finally {
    await env.close();
  }
  const unknown = [...(only ?? [])].filter((name) => !saved.has(name));
  if (unknown.length > 0) throw new Error(`--only names no recording: ${unknown.join(', ')}`);
}

main().catch((err: unknown) => {
  process.stderr.write(
    `record-histories failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`,
  );
  process.exit(1);
});
