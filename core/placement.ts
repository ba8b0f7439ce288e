/**
 * Which node group a step goes to: the cheapest group whose single node can
 * hold the step's request. A step can only run within one node, so a group
 * whose nodes are too small for it is no use however many nodes it has.
 *
 * Pure and workflow-safe (imports only schemas), because the pipeline workflow
 * routes each step to its group's task queue with it, and the autoscaling
 * policy sizes groups with the same notion of "fits".
 */
import { NODE_GROUP_LABEL, type NodeGroup } from './schemas/node-groups';
import { DISK_RESOURCE, type Resources } from './schemas/resources';

/** Ray gives a task one CPU unless it says otherwise, so an unspecified request counts as one CPU. */
export const DEFAULT_STEP_CPUS = 1;

/**
 * Label keys under `ray.io/` are Ray's own (`ray.io/node-id` is how a retried
 * step avoids the node it failed on); they pick a node within a group, never
 * the group itself.
 */
const RAY_LABEL_PREFIX = 'ray.io/';

export type Placement = { group: string } | { infeasible: string };

/** One resource a request asks for, in the units node groups declare. */
export interface ResourceAmount {
  /** As written in messages: `cpus`, `gpus`, `memoryMb`, `diskGb`, or `custom <name>`. */
  name: string;
  amount: number;
}

/** What one node of a group offers. */
type NodeShape = NodeGroup['node'];

/** The countable part of a node: what a node group declares, or what Ray reports of a live node. */
export type NodeAmounts = Pick<NodeShape, 'cpus' | 'gpus' | 'memoryMb' | 'diskGb' | 'custom'>;

/**
 * The amounts a request asks for, in a fixed order (cpus, gpus, memoryMb,
 * diskGb, then custom resources by name). Zero amounts are left out: they fit
 * anything. The custom resource `disk_gb` is the same thing as `diskGb`.
 */
export function requestedAmounts(resources: Resources): ResourceAmount[] {
  const custom = { ...(resources.custom ?? {}) };
  const diskFromCustom = custom[DISK_RESOURCE] ?? 0;
  delete custom[DISK_RESOURCE];
  const amounts: ResourceAmount[] = [
    { name: 'cpus', amount: resources.cpus ?? DEFAULT_STEP_CPUS },
    { name: 'gpus', amount: resources.gpus ?? 0 },
    { name: 'memoryMb', amount: resources.memoryMb ?? 0 },
    { name: 'diskGb', amount: Math.max(resources.diskGb ?? 0, diskFromCustom) },
    ...Object.keys(custom)
      .sort()
      .map((key) => ({ name: `custom ${key}`, amount: custom[key] ?? 0 })),
  ];
  return amounts.filter((a) => a.amount > 0);
}

/** How much of a named resource (a ResourceAmount name) a node offers. */
export function nodeAmount(node: NodeAmounts, name: string): number {
  switch (name) {
    case 'cpus':
      return node.cpus;
    case 'gpus':
      return node.gpus;
    case 'memoryMb':
      return node.memoryMb;
    case 'diskGb':
      return Math.max(node.diskGb, node.custom[DISK_RESOURCE] ?? 0);
    default:
      return name.startsWith('custom ') ? (node.custom[name.slice('custom '.length)] ?? 0) : 0;
  }
}

/** The label requests that choose a group (Ray's own `ray.io/` labels left out), sorted by key. */
export function groupChoosingLabels(resources: Resources): Array<[string, string]> {
  return Object.entries(resources.labels ?? {})
    .filter(([key]) => !key.startsWith(RAY_LABEL_PREFIX))
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

/** Why one node of the group cannot hold the request (e.g. `gpus=2 (has 0)`), or null when it can. */
export function nodeShortfall(resources: Resources, node: NodeShape): string | null {
  for (const { name, amount } of requestedAmounts(resources)) {
    const offered = nodeAmount(node, name);
    if (amount > offered) return `${name}=${amount} (has ${offered})`;
  }
  for (const [key, value] of groupChoosingLabels(resources)) {
    if (node.labels[key] !== value) return `label ${key}=${value} (has ${node.labels[key] ?? 'none'})`;
  }
  return null;
}

/**
 * The cheapest group (by cost per node-hour, ties by name) whose single node
 * can hold the request; groups that may never have a node (maxNodes 0) are
 * not candidates. When none can, says which resource is short, e.g.
 * "no node group can hold gpus=64 (largest: 0)".
 */
export function chooseNodeGroup(resources: Resources, groups: readonly NodeGroup[]): Placement {
  const candidates = groups.filter((g) => g.maxNodes > 0);
  if (candidates.length === 0)
    return { infeasible: 'no node group can have nodes (none configured with maxNodes > 0)' };
  const fitting = candidates
    .filter((g) => nodeShortfall(resources, g.node) === null)
    .sort(
      (a, b) => a.costPerNodeHour - b.costPerNodeHour || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0),
    );
  const cheapest = fitting[0];
  if (cheapest) return { group: cheapest.name };
  return { infeasible: explainInfeasible(resources, candidates) };
}

/**
 * Names the resource no group has enough of; when every resource alone fits
 * some group but no group has them all together, names each group's shortfall.
 */
function explainInfeasible(resources: Resources, groups: readonly NodeGroup[]): string {
  for (const { name, amount } of requestedAmounts(resources)) {
    const largest = Math.max(...groups.map((g) => nodeAmount(g.node, name)));
    if (amount > largest) return `no node group can hold ${name}=${amount} (largest: ${largest})`;
  }
  for (const [key, value] of groupChoosingLabels(resources)) {
    if (!groups.some((g) => g.node.labels[key] === value)) {
      const found = [...new Set(groups.map((g) => g.node.labels[key]).filter((v) => v !== undefined))];
      return `no node group has label ${key}=${value} (found: ${found.length > 0 ? found.join(', ') : 'none'})`;
    }
  }
  const perGroup = groups.map((g) => `${g.name} lacks ${nodeShortfall(resources, g.node) ?? 'nothing'}`);
  return `no node group can hold the whole request at once: ${perGroup.join('; ')}`;
}

/**
 * The step's resources with a label selector for its group's nodes. Routing a
 * step to a group's task queue is not enough on its own: Ray would place it on
 * any node with room, including another group's, while each group's worker
 * admits steps against its own nodes' capacity and the autoscaler sizes each
 * group for its own backlog. Every node of a group carries the label (local
 * nodes get it at `ray start`; KubeRay pods through `rayStartParams.labels`).
 */
export function pinToGroup(resources: Resources | undefined, group: string): Resources {
  return { ...resources, labels: { ...resources?.labels, [NODE_GROUP_LABEL]: group } };
}
