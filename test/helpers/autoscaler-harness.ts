/**
 * What the autoscaler integration tests (and bench/autoscaler.ts) share: a test
 * environment whose worker serves a test-only node-groups file (groups with
 * min 0, under test/fixtures/autoscaler/), an autoscaler workflow over those
 * groups, Ray's own view of the groups' nodes, and a clean-up that stops every
 * node the run started — the machine is small and shared.
 */
import * as path from 'node:path';
import type { WorkflowHandleWithFirstExecutionRunId as WorkflowHandle } from '@temporalio/client';
import { z } from 'zod';
import { listRayNodes, type RayNode } from '../../stack/ray-cluster-state';
import { listLocalNodes, stopLocalNode } from '../../stack/ray-nodes';
import { loadNodeGroups, loadStackConfig, REPO_ROOT } from '../../stack/config';
import type { AutoscalerStatus, AutoscalerSummary } from '../../core/messages/autoscaler';
import { NODE_GROUP_LABEL, type NodeGroup } from '../../core/schemas/node-groups';
import type { AutoscalerInputRaw } from '../../core/schemas/autoscaler';
import { PIPELINE_TASK_QUEUE } from '../../core/task-queues';
import { startTestEnv, uniqueId, waitUntil, type TestEnv } from './test-env';
import { rayAuthHeaders } from '../../stack/ray-auth';

export const BURN = 'pantheon_tasks.testkit:burn';
export const SLEEP = 'pantheon_tasks.testkit:sleep';
export const APPEND_LINE = 'pantheon_tasks.testkit:append_line';
/** The project every autoscaler test pipeline runs under (the clean-up finds them by it). */
export const TEST_PROJECT = 'autoscaler-test';

export function fixturePath(name: string): string {
  return path.join(REPO_ROOT, 'test', 'fixtures', 'autoscaler', `${name}.json`);
}

export interface AutoscalerHarness {
  env: TestEnv;
  groups: NodeGroup[];
  /** The autoscaler workflow, once started. */
  autoscaler: WorkflowHandle | null;
  startAutoscaler(input: AutoscalerInputRaw): Promise<WorkflowHandle>;
  status(): Promise<AutoscalerStatus>;
  /** Ray's own view: the group's alive nodes. */
  aliveNodes(group: string): Promise<RayNode[]>;
  /** Every Ray node (alive or dead) the group has had since the harness started. */
  nodesEverSeen(group: string): Promise<RayNode[]>;
  /** When each of those nodes joined Ray (its `start_time_ms` in Ray's state API), by node id. */
  nodeStartTimes(group: string): Promise<Map<string, number>>;
  /** Stops the autoscaler and the worker, then every local node of the fixture's groups. */
  close(): Promise<void>;
}

const nodeTimesSchema = z.object({
  data: z.object({
    result: z.object({
      result: z.array(
        z.object({
          node_id: z.string(),
          start_time_ms: z.number(),
          labels: z.record(z.string(), z.string()).default({}),
        }),
      ),
    }),
  }),
});

export async function startAutoscalerHarness(
  fixture: string,
  extraEnv: NodeJS.ProcessEnv = {},
): Promise<AutoscalerHarness> {
  const file = fixturePath(fixture);
  const groups = loadNodeGroups(file).groups;
  const stack = loadStackConfig();
  const dashboardUrl = process.env.RAY_DASHBOARD_URL ?? stack.ray.dashboardUrl;
  // Nodes left behind by an earlier, interrupted run would skew every count.
  await stopGroupNodes(groups);
  const knownBefore = new Set((await listRayNodes(dashboardUrl)).map((n) => n.nodeId));
  const env = await startTestEnv({ env: { PANTHEON_NODE_GROUPS: file, ...extraEnv } });
  const harness: AutoscalerHarness = {
    env,
    groups,
    autoscaler: null,
    async startAutoscaler(input) {
      harness.autoscaler = await env.client.workflow.start('autoscaler', {
        taskQueue: PIPELINE_TASK_QUEUE,
        workflowId: uniqueId(`autoscaler-${fixture}`),
        args: [{ groups: groups.map((g) => g.name), ...input }],
        staticSummary: `autoscaler test (${fixture})`,
      });
      return harness.autoscaler;
    },
    async status() {
      if (!harness.autoscaler) throw new Error('the autoscaler was not started');
      return harness.autoscaler.query<AutoscalerStatus>('status');
    },
    async aliveNodes(group) {
      return (await listRayNodes(dashboardUrl)).filter(
        (n) => n.alive && n.labels[NODE_GROUP_LABEL] === group,
      );
    },
    async nodesEverSeen(group) {
      return (await listRayNodes(dashboardUrl)).filter(
        (n) => !knownBefore.has(n.nodeId) && n.labels[NODE_GROUP_LABEL] === group,
      );
    },
    async nodeStartTimes(group) {
      const res = await fetch(`${dashboardUrl}/api/v0/nodes?limit=10000&detail=true`, {
        headers: rayAuthHeaders(),
      });
      const body = nodeTimesSchema.parse(await res.json());
      return new Map(
        body.data.result.result
          .filter((n) => !knownBefore.has(n.node_id) && n.labels[NODE_GROUP_LABEL] === group)
          .map((n) => [n.node_id, n.start_time_ms]),
      );
    },
    async close() {
      if (harness.autoscaler) {
        await harness.autoscaler.terminate('test over').catch(() => undefined);
      }
      // A test that failed half-way leaves pipelines whose steps would wait in these
      // groups' queues and skew the next run's backlog.
      for await (const wf of env.client.workflow.list({
        query: `PantheonProject = '${TEST_PROJECT}' AND ExecutionStatus = 'Running'`,
      }))
        await env.client.workflow
          .getHandle(wf.workflowId, wf.runId)
          .terminate('test over')
          .catch(() => undefined);
      await env.close();
      await stopGroupNodes(groups);
      for (const group of groups)
        await waitUntil(
          `Ray to see no alive node of ${group.name}`,
          async () => ((await harness.aliveNodes(group.name)).length === 0 ? true : undefined),
          60_000,
          500,
        );
    },
  };
  return harness;
}

/** Stops every local node of these groups (a clean slate before, nothing left after). */
export async function stopGroupNodes(groups: readonly NodeGroup[]): Promise<void> {
  const stack = loadStackConfig();
  for (const group of groups)
    for (const node of listLocalNodes(stack, group.name)) await stopLocalNode(stack, node.name);
}

export function summaryOf(result: unknown): AutoscalerSummary {
  return result as AutoscalerSummary;
}
