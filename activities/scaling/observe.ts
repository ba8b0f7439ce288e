/**
 * One tick's observation of a node group, put together from three sources:
 * Temporal's backlog of the group's task queue, the group's nodes as its
 * provider knows them (processes, pods), and Ray's own view of those nodes
 * (status, idle time, resources) and of its unmet demand. Pure: the observe
 * activity reads the sources and calls `observeGroup`, so the join is tested
 * without any service.
 */
import { DEFAULT_STEP_CPUS } from '../../core/placement';
import { NODE_GROUP_LABEL, type NodeGroup } from '../../core/schemas/node-groups';
import { DISK_RESOURCE, type Resources } from '../../core/schemas/resources';
import { LOCAL_NODE_LABEL } from '../../stack/ray-nodes';
import type {
  GroupObservation,
  NodeResources,
  ObservedNode,
  PendingRequest,
} from '../../core/autoscaling/policy-types';
import type { ProviderNode } from './providers/provider';
import type { RayClusterState, RayNodeState, RayPendingRequest } from './ray-cluster';
import type { TaskQueueBacklog } from './temporal-backlog';

const BYTES_PER_MB = 1024 * 1024;
/** Ray resources that are not capacity a step asks for (or are mapped to named fields). */
const NOT_CUSTOM = new Set(['CPU', 'GPU', 'memory', 'object_store_memory', DISK_RESOURCE]);

export interface GroupObservationParts {
  group: NodeGroup;
  backlog: TaskQueueBacklog;
  providerNodes: readonly ProviderNode[];
  ray: RayClusterState;
}

export interface ObservedGroup {
  observation: GroupObservation;
  /** Nodes that cost money now: every node the provider has, starting, running or stopping. */
  billableNodes: number;
  /** Ray nodes labelled with the group that no provider node accounts for (capacity the autoscaler cannot remove). */
  unmanagedNodes: string[];
  /** Steps waiting inside Ray for a node of this group (already counted in backlogCount). */
  rayPendingSteps: number;
}

/**
 * Which Ray node a provider node is: the local provider labels its nodes with
 * their name; on KubeRay the raylet's instance id is the pod name (the pod's
 * RAY_CLOUD_INSTANCE_ID, as Ray's own autoscaler v2 expects); failing both, a
 * unique IP address.
 */
export function matchRayNode(
  node: ProviderNode,
  rayNodes: readonly RayNodeState[],
): RayNodeState | undefined {
  const byName = rayNodes.find(
    (r) => r.labels[LOCAL_NODE_LABEL] === node.nodeId || r.instanceId === node.nodeId,
  );
  if (byName) return byName;
  if (!node.address) return undefined;
  const byAddress = rayNodes.filter((r) => r.address === node.address);
  return byAddress.length === 1 ? byAddress[0] : undefined;
}

/** Ray's resource amounts (CPU, memory in bytes, …) in the units node groups declare. */
export function toNodeResources(amounts: Record<string, number>): NodeResources {
  const custom: Record<string, number> = {};
  for (const [name, amount] of Object.entries(amounts))
    if (!NOT_CUSTOM.has(name) && amount >= 0) custom[name] = amount;
  return {
    cpus: amounts['CPU'] ?? 0,
    gpus: amounts['GPU'] ?? 0,
    memoryMb: (amounts['memory'] ?? 0) / BYTES_PER_MB,
    diskGb: amounts[DISK_RESOURCE] ?? 0,
    custom,
  };
}

/** A Ray request's resources as a step's resources (no labels: the group is already chosen). */
function toStepResources(amounts: Record<string, number>): Resources {
  const node = toNodeResources(amounts);
  const resources: Resources = { cpus: node.cpus };
  if (node.gpus > 0) resources.gpus = node.gpus;
  if (node.memoryMb > 0) resources.memoryMb = node.memoryMb;
  if (node.diskGb > 0) resources.diskGb = node.diskGb;
  if (Object.keys(node.custom).length > 0) resources.custom = node.custom;
  return resources;
}

/** Ray requests waiting for a node of this group: those whose label selector names the group. */
export function pendingForGroup(pending: readonly RayPendingRequest[], group: string): PendingRequest[] {
  return pending
    .filter((r) => r.labels[NODE_GROUP_LABEL] === `in(${group})`)
    .map((r) => ({ resources: toStepResources(r.resources), count: r.count }));
}

/** Steps waiting for the group: in its Temporal queue, and inside Ray for want of one of its nodes. */
export function groupBacklogSteps(
  group: string,
  backlog: TaskQueueBacklog,
  ray: RayClusterState,
): { total: number; rayPending: number } {
  const rayPending = pendingForGroup(ray.pending, group).reduce((sum, r) => sum + r.count, 0);
  return { total: backlog.backlogCount + rayPending, rayPending };
}

export function observeGroup({ group, backlog, providerNodes, ray }: GroupObservationParts): ObservedGroup {
  const groupRayNodes = ray.nodes.filter((r) => r.labels[NODE_GROUP_LABEL] === group.name);
  const accounted = new Set<string>();
  const nodes: ObservedNode[] = [];
  let startingNodes = 0;
  let cpusInUse = 0;

  for (const providerNode of providerNodes) {
    const rayNode = matchRayNode(providerNode, groupRayNodes);
    if (rayNode) accounted.add(rayNode.nodeId);
    if (!rayNode) {
      // Asked for and not in Ray yet: it will be capacity soon, so the policy counts it.
      if (providerNode.state !== 'stopping') startingNodes += 1;
      continue;
    }
    const alive = rayNode.status !== 'DEAD';
    const draining = rayNode.status === 'DRAINING' || providerNode.state === 'stopping';
    const total = toNodeResources(rayNode.total);
    const available = toNodeResources(rayNode.available);
    if (alive && !draining) cpusInUse += Math.max(0, total.cpus - available.cpus);
    nodes.push({
      nodeId: providerNode.nodeId,
      alive,
      total,
      available,
      idleSinceMs: rayNode.status === 'IDLE' ? ray.readAtMs - rayNode.idleDurationMs : null,
      draining,
    });
  }

  const rayPending = pendingForGroup(ray.pending, group.name);
  const steps = groupBacklogSteps(group.name, backlog, ray);
  const rayPendingSteps = steps.rayPending;
  return {
    observation: {
      // Steps Ray holds for want of a node are backlog too, and come first: they were admitted first.
      backlogCount: steps.total,
      backlogAgeSeconds: backlog.backlogAgeSeconds,
      addRate: backlog.addRate,
      dispatchRate: backlog.dispatchRate,
      // In default steps (one CPU each): what running work holds of the group's nodes.
      runningSteps: Math.round(cpusInUse / DEFAULT_STEP_CPUS),
      pendingDemand: rayPending.length > 0 ? rayPending : null,
      startingNodes,
      nodes,
    },
    billableNodes: providerNodes.length,
    unmanagedNodes: groupRayNodes.filter((r) => !accounted.has(r.nodeId)).map((r) => r.nodeId),
    rayPendingSteps,
  };
}
