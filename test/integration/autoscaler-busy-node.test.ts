/**
 * A node that runs a step is never removed, even with an idle timeout of
 * 200 ms and no cooldown: the policy never picks it (it is not idle), and when
 * a removal of it is forced through the real apply path anyway, Ray refuses
 * the idle-termination drain and the provider refuses to stop it. The step's
 * side effect happens exactly once, on the one node, in one attempt.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { createAutoscalerActivities } from '../../activities/scaling/activities';
import { LOCAL_NODE_LABEL } from '../../stack/ray-nodes';
import { createNodeProviders } from '../../activities/scaling/providers';
import { readRayClusterState } from '../../activities/scaling/ray-cluster';
import { loadStackConfig } from '../../stack/config';
import { APPEND_LINE, startAutoscalerHarness, type AutoscalerHarness } from '../helpers/autoscaler-harness';
import { waitUntil } from '../helpers/test-env';

const GROUP = 'as-busy'; // test/fixtures/autoscaler/busy.json: 1 CPU, min 0, max 1
const STEP_SECONDS = 12;

let harness: AutoscalerHarness;
beforeAll(async () => {
  harness = await startAutoscalerHarness('busy');
});
afterAll(async () => {
  await harness?.close();
});

test('a node running a step is never removed, even with a 200 ms idle timeout', async () => {
  const { env } = harness;
  const bridge = env.worker!.bridge;
  const marker = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-busy-')), 'effects');
  await harness.startAutoscaler({
    tickIntervalMs: 500,
    idleTimeoutMs: 200,
    cooldownMs: 0,
    maxScaleUpStep: 1,
  });

  const handle = await env.startPipeline({
    name: 'busy-node',
    project: 'autoscaler-test',
    steps: [{ id: 'effect', task: APPEND_LINE, args: [marker, 'done', STEP_SECONDS] }],
  });

  // Wait until Ray itself says the step holds the node's CPU. (RUNNING alone is not
  // enough: a node that has just joined reports it while it prestarts a worker.)
  const busy = await waitUntil(
    'the step to run on an as-busy node',
    async () =>
      (await readRayClusterState(bridge)).nodes.find(
        (n) =>
          n.labels['pantheon.io/group'] === GROUP &&
          n.status === 'RUNNING' &&
          (n.available['CPU'] ?? 0) === 0 &&
          n.activity.some((a) => a.includes('CPU currently in use')),
      ),
    120_000,
    200,
  );
  const nodeName = busy.labels[LOCAL_NODE_LABEL]!;

  // Force the removal through the same apply code the autoscaler runs, with the
  // worker's own bridge and a provider over the same state folder.
  const stack = loadStackConfig();
  const providers = await createNodeProviders({
    groups: harness.groups,
    stack: {
      ...stack,
      ray: { ...stack.ray, address: env.config.ray.address, dashboardUrl: env.config.ray.dashboardUrl },
    },
    bridge,
    kuberay: null,
    logger: env.logger,
  });
  const { applyScaling } = createAutoscalerActivities({
    workflowService: env.client.workflowService,
    namespace: env.config.temporal.namespace,
    bridge,
    nodeGroups: harness.groups,
    providerFor: providers.providerFor,
    logger: env.logger,
  });
  const forced = await applyScaling({
    decisions: [
      {
        group: GROUP,
        current: 1,
        desired: 0,
        add: 0,
        remove: [nodeName],
        infeasibleSteps: 0,
        reasons: ['test: a removal the policy would never decide'],
      },
    ],
  });
  expect(forced.groups[0]).toMatchObject({ group: GROUP, added: 0, removed: [], error: null });
  expect(forced.groups[0]!.refused).toEqual([
    { nodeId: nodeName, reason: expect.stringMatching(/^Ray refused the drain: .*no longer idle/) },
  ]);

  // And the provider on its own refuses to stop a node Ray still schedules on.
  await expect(
    providers.providerFor(harness.groups[0]!).removeNodes(harness.groups[0]!, [nodeName]),
  ).rejects.toThrow(/refused to remove .*Ray still schedules work on it \(RUNNING\)/);
  await providers.close();

  const result = (await handle.result()) as {
    steps: Record<string, { status: string; attempts: number; node?: string; nodes?: string[] }>;
  };
  expect(result.steps.effect).toMatchObject({ status: 'succeeded', attempts: 1, node: busy.nodeId });
  expect(result.steps.effect!.nodes).toEqual([busy.nodeId]);
  expect(fs.readFileSync(marker, 'utf8')).toBe('done\n');

  // Once idle, the autoscaler reclaims it — and only then: its removal comes after the step's side effect.
  // The node leaves Ray before the autoscaler records its removal (the apply activity is still stopping
  // the process): the record is what is waited for.
  const removalsOfNode = async () =>
    (await harness.status()).events.filter((e) => e.direction === 'down' && e.nodes.includes(nodeName));
  const removals = await waitUntil(
    'the idle node to be reclaimed',
    async () => {
      const recorded = await removalsOfNode();
      return recorded.length > 0 && (await harness.aliveNodes(GROUP)).length === 0 ? recorded : undefined;
    },
    60_000,
    250,
  );
  const effectAtMs = fs.statSync(marker).mtimeMs;
  expect(removals).toHaveLength(1);
  expect(removals[0]!.atMs).toBeGreaterThanOrEqual(effectAtMs);
  expect(fs.readFileSync(marker, 'utf8')).toBe('done\n');
}, 300_000); // node starts take far longer on a loaded host than jest's default allows
