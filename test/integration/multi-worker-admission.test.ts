/**
 * Cluster-wide admission with three workers on one stack (DESIGN.md,
 * principle 8): the in-process worker and two worker processes share the
 * dispatcher's ledger. Checked through Ray's own record of the tasks (their
 * submission, start and end times and the node each ran on), not through the
 * ledger: no node is ever asked for more CPUs (or GPUs) than it has, whatever
 * the number of workers and the sizes of the steps (1, 2 and 4 CPUs, and a
 * GPU on a `wide` group of its own: one local node with 4 CPUs and a GPU
 * resource, which Ray counts like any other); priority holds across
 * workers; and a worker killed with -9 gives its share back within the lease
 * while every step's side effect happens once.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { PipelineResult } from '../../core/schemas/pipeline-spec';
import {
  groupCpuCapacity,
  listRayNodes,
  listRayTasksNamed,
  type RayTaskRecord,
} from '../../stack/ray-cluster-state';
import { startLocalNode, stopLocalNode } from '../../stack/ray-nodes';
import { loadNodeGroups, loadStackConfig } from '../../stack/config';
import { nodeGroupSchema } from '../../core/schemas/node-groups';
import { recordFigures } from '../helpers/figures';
import { priorityOrder, sleepSteps } from '../helpers/priority-order';
import { longestRayWaitMs, peakOccupancy } from '../helpers/ray-occupancy';
import { startTestEnv, waitUntil, type TestEnv } from '../helpers/test-env';
import type { WorkerProcess } from '../helpers/worker-process';

const WIDE_LABEL = 'pantheon.io/wide';
const wide = nodeGroupSchema.parse({
  name: 'wide',
  node: { cpus: 4, gpus: 1, memoryMb: 1024, labels: { [WIDE_LABEL]: 'yes' } },
  minNodes: 0,
  maxNodes: 1,
  // Dearer than the stack's group, so that steps that do not need it never come here.
  costPerNodeHour: 100,
});

const stack = loadStackConfig();
let env: TestEnv;
let others: WorkerProcess[];
let wideNode: { name: string; nodeId: string } | undefined;
/** Each alive node's CPUs and GPUs, as Ray reports them. */
let nodeTotals: Map<string, { CPU: number; GPU: number }>;
let cpuGroupCpus: number;

beforeAll(async () => {
  const groupsFile = path.join(
    fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-groups-')),
    'node-groups.json',
  );
  const { groups } = loadNodeGroups(stack.nodeGroupsFile);
  fs.writeFileSync(groupsFile, JSON.stringify({ groups: [...groups, wide] }));
  wideNode = await startLocalNode(stack, wide);
  env = await startTestEnv({ env: { PANTHEON_NODE_GROUPS: groupsFile } });
  others = [await env.startWorkerProcess(), await env.startWorkerProcess()];
  const nodes = (await listRayNodes(env.config.ray.dashboardUrl)).filter((n) => n.alive);
  nodeTotals = new Map(
    nodes.map((n) => [n.nodeId, { CPU: n.resourcesTotal['CPU'] ?? 0, GPU: n.resourcesTotal['GPU'] ?? 0 }]),
  );
  cpuGroupCpus = groupCpuCapacity(nodes, 'cpu');
  // All three leases are in the ledger before any step is started.
  await waitUntil('three admission leases', async () => {
    const state = await env.worker!.dispatcher.admissionState();
    return Object.keys(state.holders).length >= 3 ? state : undefined;
  });
}, 300_000);
afterAll(async () => {
  await env?.close();
  if (wideNode) await stopLocalNode(stack, wideNode.name);
}, 120_000);

/** The process group of a live process (field 5 of /proc/<pid>/stat), or null. */
function processGroupOf(pid: number): number | null {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]);
  } catch {
    return null;
  }
}

async function rayTasksOf(workflowId: string, stepIds: readonly string[]): Promise<RayTaskRecord[]> {
  const dashboard = env.config.ray.dashboardUrl;
  // Ray reports task events about once a second: wait until every task's end is in.
  return waitUntil('Ray to record every task of the pipeline as ended', async () => {
    const tasks = (
      await Promise.all(stepIds.map((id) => listRayTasksNamed(dashboard, `${workflowId}/${id}`)))
    ).flat();
    return tasks.length >= stepIds.length && tasks.every((t) => t.endedAtMs !== null) ? tasks : undefined;
  });
}

function expectNoNodeOverAsked(tasks: readonly RayTaskRecord[], resource: 'CPU' | 'GPU') {
  const peaks = peakOccupancy(tasks, resource);
  expect(peaks.length).toBeGreaterThan(0);
  for (const { nodeId, peak } of peaks) {
    const has = nodeTotals.get(nodeId)?.[resource] ?? 0;
    expect({ nodeId, resource, peak: Math.min(peak, has) }).toEqual({ nodeId, resource, peak });
  }
  return peaks;
}

test('three workers, a fan-out of mixed sizes wider than the cluster: no node is asked for more than it has', async () => {
  const sleeps = (prefix: string, n: number, resources: Record<string, unknown>) =>
    Array.from({ length: n }, (_, i) => ({
      id: `${prefix}${i}`,
      task: 'pantheon_tasks.testkit:sleep',
      args: [1.5],
      resources,
    }));
  const onWide = { labels: { [WIDE_LABEL]: 'yes' } };
  const steps = [
    ...sleeps('one', 10, { cpus: 1 }),
    ...sleeps('two', 5, { cpus: 2 }),
    ...sleeps('wideone', 4, { cpus: 1, ...onWide }),
    ...sleeps('widetwo', 3, { cpus: 2, ...onWide }),
    ...sleeps('widefour', 2, { cpus: 4, ...onWide }),
    ...sleeps('gpu', 3, { cpus: 1, gpus: 1 }),
  ];
  const handle = await env.startPipeline({ name: 'fan-out', project: 'admission', steps });
  const result = (await handle.result()) as PipelineResult;
  expect(Object.values(result.steps).map((s) => s.status)).toEqual(steps.map(() => 'succeeded'));

  const tasks = await rayTasksOf(
    handle.workflowId,
    steps.map((s) => s.id),
  );
  const cpuPeaks = expectNoNodeOverAsked(tasks, 'CPU');
  const gpuPeaks = expectNoNodeOverAsked(
    tasks.filter((t) => (t.resources['GPU'] ?? 0) > 0),
    'GPU',
  );
  // Ray recorded each step's request as the step asked it, and the wide ones ran on the wide node.
  const named = (prefix: string) => tasks.filter((t) => new RegExp(`/${prefix}\\d+$`).test(t.name));
  expect(named('widefour').map((t) => [t.resources['CPU'], t.nodeId])).toEqual([
    [4, wideNode!.nodeId],
    [4, wideNode!.nodeId],
  ]);
  expect(named('gpu').map((t) => [t.resources['GPU'], t.nodeId])).toEqual(
    Array.from({ length: 3 }, () => [1, wideNode!.nodeId]),
  );
  expect(named('two').map((t) => t.resources['CPU'])).toEqual([2, 2, 2, 2, 2]);
  recordFigures('multi-worker-admission', {
    workers: 3,
    steps: steps.length,
    peakCpusPerNode: cpuPeaks,
    peakGpusPerNode: gpuPeaks,
    longestRayWaitMs: longestRayWaitMs(tasks),
  });
  // Nothing is left over in the ledger once the pipeline is done.
  const state = await env.worker!.dispatcher.admissionState();
  expect(state.waiting).toEqual([]);
});

test('priority holds across workers: urgent steps queued behind a low backlog start first', async () => {
  // The steps below ask for no label: the cheaper `cpu` group takes them all.
  const capacity = cpuGroupCpus;
  const lowSteps = capacity * 3;
  const low = await env.startPipeline({
    name: 'backlog',
    project: 'admission',
    priority: 5,
    steps: sleepSteps('low', lowSteps, 3),
  });
  await waitUntil('the backlog to fill the cluster', async () => {
    const p = await env.progress(low);
    const running = Object.values(p.steps).filter((s) => s.status === 'running').length;
    return running >= capacity ? true : undefined;
  });
  const urgent = await env.startPipeline({
    name: 'urgent',
    project: 'admission',
    priority: 1,
    steps: sleepSteps('urgent', capacity, 1),
  });
  const [lowResult, urgentResult] = (await Promise.all([low.result(), urgent.result()])) as PipelineResult[];
  const { remaining, overtaken, lastUrgentStart, urgentQueuedAt } = priorityOrder(lowResult!, urgentResult!);
  recordFigures('multi-worker-priority', {
    capacity,
    remainingLowSteps: remaining.length,
    lastUrgentStartAfterQueuedMs: lastUrgentStart - urgentQueuedAt,
  });
  expect(remaining.length).toBeGreaterThanOrEqual(lowSteps - 2 * capacity);
  expect(overtaken).toEqual([]);
});

test('kill -9 of one of three workers mid-fan-out: its share comes back within the lease, every side effect once', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-admission-kill-'));
  const file = path.join(dir, 'lines.txt');
  const count = 12;
  const handle = await env.startPipeline({
    name: 'kill-mid-fan-out',
    project: 'admission',
    steps: Array.from({ length: count }, (_, i) => ({
      id: `s${i}`,
      task: 'pantheon_tasks.testkit:append_line',
      args: [file, `line ${i}`, 2],
    })),
  });
  const dispatcher = env.worker!.dispatcher;
  const victim = others[0]!;
  // The victim's lease: its holder names the worker's pid, a process in the victim's process group.
  const victimHolder = await waitUntil('the victim worker’s lease', async () => {
    const state = await dispatcher.admissionState();
    return Object.keys(state.holders).find((h) => processGroupOf(Number(h.split('/')[1])) === victim.pid);
  });
  await waitUntil('a few steps to run', async () => {
    const p = await env.progress(handle);
    return Object.values(p.steps).filter((s) => s.status === 'running').length >= 2 ? true : undefined;
  });
  await victim.kill9();
  const killedAt = Date.now();
  const { leaseS } = await dispatcher.admissionState();
  await waitUntil(
    'the killed worker’s lease to end',
    async () => ((await dispatcher.admissionState()).holders[victimHolder] === undefined ? true : undefined),
    (leaseS + 5) * 1000,
  );
  const releasedMs = Date.now() - killedAt;

  const result = (await handle.result()) as PipelineResult;
  expect(Object.values(result.steps).every((s) => s.status === 'succeeded')).toBe(true);
  const lines = fs.readFileSync(file, 'utf8').trim().split('\n').sort();
  expect(lines).toEqual(Array.from({ length: count }, (_, i) => `line ${i}`).sort());
  recordFigures('multi-worker-kill', { leaseS, releasedMs, steps: count });
  expect(releasedMs).toBeLessThanOrEqual((leaseS + 1) * 1000);
});

test('a worker stopped by SIGTERM to its whole process group gives its lease back before it exits', async () => {
  const dispatcher = env.worker!.dispatcher;
  const worker = others[1]!;
  const holder = await waitUntil('the worker’s lease', async () => {
    const state = await dispatcher.admissionState();
    return Object.keys(state.holders).find((h) => processGroupOf(Number(h.split('/')[1])) === worker.pid);
  });
  // SIGTERM reaches the worker and its Python bridge alike (as systemd or Ctrl-C would send it); the
  // bridge stays until the worker has shut down, so the lease is released now, not at its end.
  await worker.stop();
  expect((await dispatcher.admissionState()).holders[holder]).toBeUndefined();
});
