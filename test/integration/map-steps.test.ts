/**
 * Map steps (issue #13): one task over a list, each item its own Ray task
 * under one activity. A worker killed with -9 mid-map leaves the map running
 * in the dispatcher, and the next attempt attaches to it: every item's side
 * effect happens exactly once. Items that fail for good are reported by index;
 * a list may come from another step's output by reference, and the map's own
 * output goes on by reference to the next step.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { isBlobRef } from '../../core/schemas/blob-ref';
import { cancelStepUpdate } from '../../core/messages/pipeline';
import { listRayTasksNamed } from '../../stack/ray-cluster-state';
import type { PipelineResult } from '../../core/schemas/pipeline-spec';
import { runPantheon } from '../helpers/pantheon-cli';
import { failedPipelineResult } from '../helpers/workflow-failure';
import { startTestEnv, uniqueId, waitUntil, type TestEnv } from '../helpers/test-env';
import type { WorkerProcess } from '../helpers/worker-process';

const RECORD = 'pantheon_tasks.testkit:record_item';

let env: TestEnv;
let worker: WorkerProcess;
let dir: string;
beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-map-'));
  // No in-process worker: only the killable worker process takes the map's activity. A low inline
  // threshold sends lists of a few thousand numbers by reference, as much larger ones would be.
  env = await startTestEnv({ worker: false, env: { PANTHEON_BLOB_THRESHOLD_BYTES: '4096' } });
  worker = await env.startWorkerProcess();
}, 180_000);
afterAll(async () => {
  await env?.close();
});

/** The lines of a record_item file, parsed. */
function recorded(file: string): unknown[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as unknown);
}

/** A pipeline of one map step `each` of record_item over `map.over`, writing to `file`. */
function startRecordMap(name: string, file: string, args: unknown[], map: Record<string, unknown>) {
  return env.startPipeline({
    name,
    project: 'maps',
    steps: [{ id: 'each', task: RECORD, args: [file, ...args], map }],
  });
}

function countsOf(values: unknown[]): Map<unknown, number> {
  const counts = new Map<unknown, number>();
  for (const v of values) counts.set(v, (counts.get(v) ?? 0) + 1);
  return counts;
}

test('10,000 items with the worker killed (-9) mid-map: every item runs exactly once', async () => {
  const items = 10_000;
  const file = path.join(dir, 'kill.txt');
  const handle = await env.startPipeline(
    {
      name: 'map-kill',
      project: 'maps',
      steps: [
        { id: 'list', task: 'pantheon_tasks.testkit:numbers', args: [items] },
        // 5 ms per item: long enough that the map is still running while the CLI starts and reads it.
        { id: 'each', task: RECORD, args: [file, null, 0.005], map: { over: { $step: 'list' } } },
      ],
    },
    uniqueId('map-kill'),
  );
  // Kill once a good part of the items ran, with most still ahead.
  await waitUntil('a tenth of the items to run', async () =>
    recorded(file).length >= items / 10 ? true : undefined,
  );
  // The CLI counts the items as they run (from the map activity's heartbeats).
  const status = await runPantheon(['status', handle.workflowId], {
    TEMPORAL_ADDRESS: env.config.temporal.address,
  });
  expect(status.stdout).toMatch(/each\s+\S+\s+running \d+\/10000/);
  await worker.kill9();
  const killedAt = recorded(file).length;
  expect(killedAt).toBeLessThan(items);
  worker = await env.startWorkerProcess();

  const result = (await handle.result()) as PipelineResult;
  const each = result.steps.each!;
  expect(each.status).toBe('succeeded');
  // The attempt that the kill cost, and the one that attached to the map still running.
  expect(each.attempts).toBeGreaterThanOrEqual(2);
  expect(each.items).toMatchObject({ total: items, succeeded: items, failed: 0, itemAttempts: items });
  const counts = countsOf(recorded(file));
  expect(counts.size).toBe(items);
  expect([...counts.values()].every((n) => n === 1)).toBe(true);
  // Above the inline threshold: the output went on by reference.
  expect(isBlobRef(each.output)).toBe(true);
}, 600_000);

test('items that fail are reported by index; the others run; retries per item are the map’s', async () => {
  const file = path.join(dir, 'fail.txt');
  const handle = await startRecordMap('map-fail', file, [[3, 11]], {
    over: Array.from({ length: 20 }, (_, i) => i),
    maxItemAttempts: 2,
    maxFailedItems: 20,
  });
  const result = await failedPipelineResult(handle);
  const each = result.steps.each!;
  expect(each.status).toBe('failed');
  expect(each.error?.type).toBe('MapItemsFailed');
  expect(each.error?.message).toMatch(/2 of 20 items failed \(indices 3, 11\)/);
  expect(each.items).toMatchObject({ total: 20, succeeded: 18, failed: 2, failedIndices: [3, 11] });
  // The activity is not retried for item failures (one attempt); each failing item was tried twice.
  expect(each.attempts).toBe(1);
  const counts = countsOf(recorded(file));
  for (let i = 0; i < 20; i++) expect(counts.get(i)).toBe(i === 3 || i === 11 ? 2 : 1);
}, 180_000);

test('by default the first item that fails for good stops new items from starting', async () => {
  const file = path.join(dir, 'stop.txt');
  const handle = await startRecordMap('map-stop', file, [[0], 0.05], {
    over: Array.from({ length: 400 }, (_, i) => i),
    concurrency: 2,
    maxItemAttempts: 1,
  });
  const result = await failedPipelineResult(handle);
  const each = result.steps.each!;
  expect(each.items?.failedIndices).toEqual([0]);
  expect(each.error?.message).toMatch(/items were not started after the failures/);
  expect(recorded(file).length).toBeLessThan(400);
}, 180_000);

test('a map over another step’s output by reference hands its own output on to the next step', async () => {
  const handle = await env.startPipeline({
    name: 'map-chain',
    project: 'maps',
    steps: [
      { id: 'list', task: 'pantheon_tasks.testkit:numbers', args: [3_000] },
      { id: 'echo', task: 'pantheon_tasks.testkit:echo', map: { over: { $step: 'list' }, concurrency: 8 } },
      { id: 'same', task: 'pantheon_tasks.testkit:echo', args: [{ $step: 'echo' }] },
    ],
  });
  const result = (await handle.result()) as PipelineResult;
  expect(result.status).toBe('succeeded');
  expect(isBlobRef(result.steps.list!.output)).toBe(true);
  expect(isBlobRef(result.steps.echo!.output)).toBe(true);
  expect(result.steps.echo!.items).toMatchObject({ total: 3_000, succeeded: 3_000 });
  // The next step was given the map's output (its own output, the same list again, went by reference
  // too): the list, item by item, in item order.
  expect(isBlobRef(result.steps.same!.output)).toBe(true);
  const same = await runPantheon(['output', handle.workflowId, 'same'], {
    TEMPORAL_ADDRESS: env.config.temporal.address,
  });
  expect(same.code).toBe(0);
  expect(JSON.parse(same.stdout)).toEqual(Array.from({ length: 3_000 }, (_, i) => i));
}, 300_000);

test('a code pipeline maps with run.map: bulk-scoring scores every item once', async () => {
  const handle = await env.startCodePipeline('bulkScoring', { project: 'maps', input: { count: 2_000 } });
  const result = (await handle.result()) as PipelineResult;
  expect(result.status).toBe('succeeded');
  expect(result.steps.score!.items).toMatchObject({ total: 2_000, succeeded: 2_000, failed: 0 });
  expect(result.output).toMatchObject({ combined: { count: 2_000 }, scored: { total: 2_000 } });
}, 300_000);

test('cancelStep stops a running map: its items in flight are interrupted and no new item starts', async () => {
  const file = path.join(dir, 'cancel.txt');
  // Each item sleeps 2 s before it writes its line: an interrupted item writes nothing.
  const handle = await startRecordMap('map-cancel', file, [[], 2], {
    over: Array.from({ length: 40 }, (_, i) => i),
    concurrency: 2,
  });
  await waitUntil('two items to finish', async () => (recorded(file).length >= 2 ? true : undefined));
  expect(await handle.executeUpdate(cancelStepUpdate, { args: [{ stepId: 'each' }] })).toEqual({
    stepId: 'each',
    was: 'running',
  });
  const atCancel = recorded(file).length;
  const result = (await handle.result()) as PipelineResult;
  expect(result.steps.each).toMatchObject({ status: 'cancelled', error: { type: 'Cancelled' } });
  // The step ends only once its items have (the cancel's grace, then force): no item writes after it.
  const atEnd = recorded(file).length;
  expect(atEnd).toBeLessThanOrEqual(atCancel + 2);
  expect(atEnd).toBeLessThan(40);
  await waitUntil(
    'Ray to list every item of the map as ended',
    async () => {
      const tasks = await listRayTasksNamed(env.config.ray.dashboardUrl, `${handle.workflowId}/each`);
      return tasks.length > 0 && tasks.every((t) => t.state === 'FINISHED' || t.state === 'FAILED')
        ? true
        : undefined;
    },
    60_000,
    500,
  );
  expect(recorded(file).length).toBe(atEnd);
}, 180_000);
