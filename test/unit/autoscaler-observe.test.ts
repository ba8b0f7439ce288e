/**
 * The observe step's pure join (activities/scaling/observe.ts): provider nodes
 * + Ray's node states and unmet demand + Temporal's backlog → the policy's
 * GroupObservation; and the autoscaler workflow's input schema.
 */
import { describeZodError } from '../../core/issues';
import {
  matchRayNode,
  observeGroup,
  pendingForGroup,
  toNodeResources,
} from '../../activities/scaling/observe';
import { decide } from '../../core/autoscaling/policy';
import type { ProviderNode } from '../../activities/scaling/providers/provider';
import type { RayClusterState, RayNodeState } from '../../activities/scaling/ray-cluster';
import { pinToGroup } from '../../core/placement';
import { autoscalerInputSchema } from '../../core/schemas/autoscaler';
import { nodeGroupSchema } from '../../core/schemas/node-groups';

const MB = 1024 * 1024;
const group = nodeGroupSchema.parse({
  name: 'cpu',
  node: { cpus: 2, memoryMb: 1024 },
  minNodes: 0,
  maxNodes: 5,
  costPerNodeHour: 0.1,
});

function rayNode(name: string, over: Partial<RayNodeState> = {}): RayNodeState {
  return {
    nodeId: name.padEnd(56, '0').replace(/[^0-9a-f]/g, 'a'),
    instanceId: '',
    address: '192.0.2.2',
    status: 'IDLE',
    idleDurationMs: 0,
    total: { CPU: 2, memory: 1024 * MB, object_store_memory: 100 * MB },
    available: { CPU: 2, memory: 1024 * MB, object_store_memory: 100 * MB },
    labels: { 'pantheon.io/group': 'cpu', 'pantheon.io/local-node': name },
    activity: [],
    ...over,
  };
}

const READ_AT = 1_000_000;
const backlog = { backlogCount: 4, backlogAgeSeconds: 7, addRate: 0.5, dispatchRate: 0.25 };

describe('matchRayNode', () => {
  const nodes = [
    rayNode('a'),
    rayNode('b', { labels: { 'pantheon.io/group': 'cpu' }, instanceId: 'pod-b', address: '10.0.0.2' }),
    rayNode('c', { labels: { 'pantheon.io/group': 'cpu' }, address: '10.0.0.3' }),
    rayNode('d', { labels: { 'pantheon.io/group': 'cpu' }, address: '10.0.0.9' }),
    rayNode('e', { labels: { 'pantheon.io/group': 'cpu' }, address: '10.0.0.9' }),
  ];
  test('by the local node label, the instance id (KubeRay pod name), or a unique address', () => {
    expect(matchRayNode({ nodeId: 'a', state: 'running' }, nodes)?.nodeId).toBe(nodes[0]!.nodeId);
    expect(matchRayNode({ nodeId: 'pod-b', state: 'running' }, nodes)?.nodeId).toBe(nodes[1]!.nodeId);
    expect(matchRayNode({ nodeId: 'pod-c', state: 'running', address: '10.0.0.3' }, nodes)?.nodeId).toBe(
      nodes[2]!.nodeId,
    );
  });
  test('an ambiguous or unknown address matches nothing', () => {
    expect(matchRayNode({ nodeId: 'pod-x', state: 'running', address: '10.0.0.9' }, nodes)).toBeUndefined();
    expect(matchRayNode({ nodeId: 'pod-y', state: 'starting' }, nodes)).toBeUndefined();
  });
});

test('toNodeResources: Ray units to node-group units; object store is not capacity', () => {
  expect(
    toNodeResources({
      CPU: 4,
      GPU: 1,
      memory: 2048 * MB,
      object_store_memory: 100 * MB,
      disk_gb: 10,
      tpu: 2,
    }),
  ).toEqual({ cpus: 4, gpus: 1, memoryMb: 2048, diskGb: 10, custom: { tpu: 2 } });
});

test('pendingForGroup: only requests whose selector names the group, as step resources', () => {
  const pending: RayClusterState['pending'] = [
    { resources: { CPU: 1, memory: 256 * MB }, labels: { 'pantheon.io/group': 'in(cpu)' }, count: 2 },
    { resources: { CPU: 1 }, labels: { 'pantheon.io/group': 'in(gpu)' }, count: 5 },
    { resources: { CPU: 1 }, labels: {}, count: 7 },
  ];
  expect(pendingForGroup(pending, 'cpu')).toEqual([{ resources: { cpus: 1, memoryMb: 256 }, count: 2 }]);
});

describe('observeGroup', () => {
  const providerNodes: ProviderNode[] = [
    { nodeId: 'idle', state: 'running' },
    { nodeId: 'busy', state: 'running' },
    { nodeId: 'booting', state: 'starting' },
    { nodeId: 'leaving', state: 'stopping' },
    { nodeId: 'gone', state: 'stopping' },
    { nodeId: 'draining', state: 'running' },
  ];
  const ray: RayClusterState = {
    readAtMs: READ_AT,
    nodes: [
      rayNode('idle', { idleDurationMs: 5_000 }),
      rayNode('busy', { status: 'RUNNING', available: { CPU: 0.5, memory: 512 * MB } }),
      rayNode('leaving', { idleDurationMs: 90_000 }),
      rayNode('draining', { status: 'DRAINING' }),
      rayNode('stranger'),
      rayNode('other-group', { labels: { 'pantheon.io/group': 'gpu', 'pantheon.io/local-node': 'idle' } }),
    ],
    pending: [{ resources: { CPU: 2 }, labels: { 'pantheon.io/group': 'in(cpu)' }, count: 3 }],
  };
  const observed = observeGroup({ group, backlog, providerNodes, ray });

  test('nodes: idle since when Ray says, busy ones not idle, stopping and draining ones not counted', () => {
    expect(observed.observation.nodes).toEqual([
      {
        nodeId: 'idle',
        alive: true,
        draining: false,
        idleSinceMs: READ_AT - 5_000,
        total: { cpus: 2, gpus: 0, memoryMb: 1024, diskGb: 0, custom: {} },
        available: { cpus: 2, gpus: 0, memoryMb: 1024, diskGb: 0, custom: {} },
      },
      expect.objectContaining({ nodeId: 'busy', idleSinceMs: null, draining: false }),
      expect.objectContaining({ nodeId: 'leaving', draining: true }),
      expect.objectContaining({ nodeId: 'draining', draining: true }),
    ]);
    expect(observed.observation.startingNodes).toBe(1); // `booting`; `gone` is stopping and not in Ray
  });

  test('backlog: Temporal’s plus the steps Ray holds for want of a node, those first', () => {
    expect(observed.observation).toMatchObject({
      backlogCount: 4 + 3,
      backlogAgeSeconds: 7,
      addRate: 0.5,
      dispatchRate: 0.25,
      pendingDemand: [{ resources: { cpus: 2 }, count: 3 }],
    });
    expect(observed.rayPendingSteps).toBe(3);
  });

  test('running steps in one-CPU units; billable and unmanaged nodes', () => {
    expect(observed.observation.runningSteps).toBe(2); // 1.5 CPUs in use on `busy`, rounded
    expect(observed.billableNodes).toBe(providerNodes.length);
    expect(observed.unmanagedNodes).toEqual([ray.nodes[4]!.nodeId]);
  });

  test('fed to the policy with a zero idle timeout, only the idle node may go, never the busy one', () => {
    const decision = decide({
      nowMs: READ_AT,
      groups: [group],
      observations: { cpu: { ...observed.observation, backlogCount: 0, pendingDemand: null } },
      settings: { idleTimeoutMs: 0, maxScaleUpStep: 2, cooldownMs: 0, anticipationSeconds: 0 },
      state: { groups: {} },
    });
    expect(decision.groups[0]!.remove).toEqual(['idle']);
  });
});

describe('autoscaler input', () => {
  test('defaults: a few seconds per tick, every group', () => {
    expect(autoscalerInputSchema.parse({})).toMatchObject({
      tickIntervalMs: 2_000,
      idleTimeoutMs: 60_000,
      cooldownMs: 30_000,
      maxScaleUpStep: 4,
      budget: null,
      paused: false,
    });
  });
  test('errors name the field', () => {
    const parsed = autoscalerInputSchema.safeParse({
      groups: ['Bad Name'],
      budget: { nodeHours: 0 },
      extra: 1,
    });
    expect(parsed.success).toBe(false);
    const text = describeZodError(parsed.error!);
    expect(text).toMatch(/groups\[0\]: a node group name/);
    expect(text).toMatch(/budget\.nodeHours: /);
  });
});

test('pinToGroup: a step runs only on its group’s nodes, its own labels kept', () => {
  expect(pinToGroup(undefined, 'cpu')).toEqual({ labels: { 'pantheon.io/group': 'cpu' } });
  expect(pinToGroup({ cpus: 2, labels: { zone: 'a' } }, 'gpu')).toEqual({
    cpus: 2,
    labels: { zone: 'a', 'pantheon.io/group': 'gpu' },
  });
});
