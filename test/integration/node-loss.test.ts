/**
 * Reassignment: a Ray worker node killed (SIGKILL to its whole process group)
 * while it runs a step. The attempt fails as `node_lost`; the next attempt
 * avoids that node through a label selector on `ray.io/node-id` and completes
 * on another node; the result lists both. The test runs on two extra nodes of
 * a `drill` node group of its own, so the stack's own nodes are left alone.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { listRayTasksNamed } from '../../stack/ray-cluster-state';
import { stepKey } from '../../activities/ray/task-step';
import { startLocalNode, stopLocalNode } from '../../stack/ray-nodes';
import { loadNodeGroups, loadStackConfig } from '../../stack/config';
import { nodeGroupSchema } from '../../core/schemas/node-groups';
import type { PipelineResult } from '../../core/schemas/pipeline-spec';
import { startTestEnv, uniqueId, waitUntil, type TestEnv } from '../helpers/test-env';

const DRILL_LABEL = 'pantheon.io/drill';
const drill = nodeGroupSchema.parse({
  name: 'drill',
  node: { cpus: 1, memoryMb: 1024, labels: { [DRILL_LABEL]: 'yes' } },
  minNodes: 0,
  maxNodes: 2,
  // Dearer than the stack's group, so that steps without the label never come here.
  costPerNodeHour: 100,
});

const stack = loadStackConfig();
let env: TestEnv;
const nodes: Array<{ name: string; pid: number; nodeId: string }> = [];

beforeAll(async () => {
  const groupsFile = path.join(
    fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-groups-')),
    'node-groups.json',
  );
  const { groups } = loadNodeGroups(stack.nodeGroupsFile);
  fs.writeFileSync(groupsFile, JSON.stringify({ groups: [...groups, drill] }));
  // One at a time: raylets starting side by side on one host can time out registering.
  for (let i = 0; i < 2; i++) nodes.push(await startLocalNode(stack, drill));
  env = await startTestEnv({ env: { PANTHEON_NODE_GROUPS: groupsFile } });
}, 300_000);

afterAll(async () => {
  await env?.close();
  for (const node of nodes) await stopLocalNode(stack, node.name);
}, 120_000);

test('a node killed mid-step: the step completes on another node, and the result lists both', async () => {
  const workflowId = uniqueId('node-loss');
  const handle = await env.startPipeline(
    {
      name: 'node-loss',
      project: 'drills',
      steps: [
        {
          id: 'work',
          task: 'pantheon_tasks.testkit:sleep',
          args: [8, 'done'],
          resources: { cpus: 1, labels: { [DRILL_LABEL]: 'yes' } },
        },
      ],
    },
    workflowId,
  );
  const name = stepKey(workflowId, 'work');
  const running = await waitUntil(
    `Ray task ${name} to run`,
    async () =>
      (await listRayTasksNamed(env.config.ray.dashboardUrl, name)).find((t) => t.state === 'RUNNING'),
    60_000,
    100,
  );
  const victim = nodes.find((n) => n.nodeId === running.nodeId);
  if (!victim) throw new Error(`the step runs on ${running.nodeId}, not on a drill node`);
  const survivor = nodes.find((n) => n !== victim)!;
  process.kill(-victim.pid, 'SIGKILL');

  const result = (await handle.result()) as PipelineResult;
  const step = result.steps.work;
  expect(step).toMatchObject({ status: 'succeeded', output: 'done', attempts: 2, node: survivor.nodeId });
  expect(step?.nodes).toEqual([victim.nodeId, survivor.nodeId]);
  expect(step?.tries?.map((t) => [t.outcome, t.node])).toEqual([
    ['node_lost', victim.nodeId],
    ['succeeded', survivor.nodeId],
  ]);
});
