/**
 * Drives the pure autoscaling policy (policy.ts) with a simulated clock and a
 * synthetic load, to measure what it costs and how it behaves: node-seconds,
 * makespan, flaps and scale events, against a static cluster of the maximum
 * size. Deterministic: the same scenario gives the same report.
 *
 * The model: steps arrive, are routed to the cheapest node group that holds
 * them (workflows/placement.ts), wait in that group's FIFO queue, and start on
 * the first ready node with room for them. The policy ticks every `tickMs`;
 * an added node joins after `nodeStartupMs` and is paid for from the moment it
 * is asked for; a removed node is gone at once. Time advances in steps of
 * `stepMs`: arrivals and starts happen on step boundaries, completions at
 * their exact times.
 */
import { chooseNodeGroup, nodeAmount, requestedAmounts, type ResourceAmount } from '../placement';
import type { NodeGroup } from '../schemas/node-groups';
import type { Resources } from '../schemas/resources';
import { decide } from './policy';
import type {
  GroupObservation,
  NodeResources,
  PendingRequest,
  PolicySettings,
  PolicyState,
} from './policy-types';

/** One step of the synthetic load. */
export interface SimulatedStep {
  arrivalMs: number;
  durationMs: number;
  /** Default: a default step (one CPU). Steps sharing an object share a shape, which packs faster. */
  resources?: Resources;
}

/** Building blocks of a synthetic load; times in ms from the start. */
export type LoadPattern =
  | { kind: 'burst'; atMs: number; count: number; durationMs: number; resources?: Resources }
  | {
      kind: 'steady';
      fromMs: number;
      toMs: number;
      perSecond: number;
      durationMs: number;
      resources?: Resources;
    }
  | {
      /** A square wave: `highPerSecond` for the first half of each period, `lowPerSecond` for the second. */
      kind: 'oscillating';
      fromMs: number;
      toMs: number;
      periodMs: number;
      highPerSecond: number;
      lowPerSecond: number;
      durationMs: number;
      resources?: Resources;
    };

/** The steps of the patterns, evenly spaced within each pattern, sorted by arrival. */
export function generateLoad(patterns: readonly LoadPattern[]): SimulatedStep[] {
  const steps: SimulatedStep[] = [];
  const stream = (
    fromMs: number,
    toMs: number,
    perSecond: number,
    durationMs: number,
    resources?: Resources,
  ) => {
    if (perSecond <= 0) return;
    const gapMs = 1000 / perSecond;
    for (let t = fromMs; t < toMs; t += gapMs)
      steps.push({ arrivalMs: Math.floor(t), durationMs, resources });
  };
  for (const p of patterns) {
    if (p.kind === 'burst') {
      for (let i = 0; i < p.count; i++)
        steps.push({ arrivalMs: p.atMs, durationMs: p.durationMs, resources: p.resources });
    } else if (p.kind === 'steady') {
      stream(p.fromMs, p.toMs, p.perSecond, p.durationMs, p.resources);
    } else {
      for (let start = p.fromMs; start < p.toMs; start += p.periodMs) {
        const middle = Math.min(start + p.periodMs / 2, p.toMs);
        stream(start, middle, p.highPerSecond, p.durationMs, p.resources);
        stream(middle, Math.min(start + p.periodMs, p.toMs), p.lowPerSecond, p.durationMs, p.resources);
      }
    }
  }
  return steps.sort((a, b) => a.arrivalMs - b.arrivalMs);
}

export interface SimulationOptions {
  groups: NodeGroup[];
  load: readonly SimulatedStep[];
  /** `static`: every group at maxNodes from the start and no policy, the baseline. */
  mode: 'autoscale' | 'static';
  settings: PolicySettings;
  tickMs: number;
  /** Default: the smaller of tickMs and 500 ms. */
  stepMs?: number;
  /** From asking for a node to its joining the cluster. */
  nodeStartupMs: number;
  /** Tell the policy the backlog's resource requests (run-length encoded), not only its count. */
  describePendingDemand?: boolean;
  /** Stop even if the load is not done (a runaway guard). Default: one simulated day. */
  maxSimulatedMs?: number;
}

export interface ScaleEvent {
  atMs: number;
  group: string;
  direction: 'up' | 'down';
  nodes: number;
}

export interface SimulationReport {
  mode: SimulationOptions['mode'];
  /** First arrival to last completion. */
  makespanMs: number;
  /** Until the load is done and (autoscaling) every group is back at minNodes. */
  simulatedMs: number;
  /** Node-seconds paid, from asking for each node to its removal (or the end). */
  nodeSeconds: number;
  nodeSecondsByGroup: Record<string, number>;
  /** Node-hours times each group's cost per node-hour. */
  cost: number;
  peakNodes: number;
  scaleEvents: number;
  scaleUps: number;
  scaleDowns: number;
  /** Scale direction reversals within the cooldown, per group, summed. */
  flaps: number;
  completedSteps: number;
  unfinishedSteps: number;
  /** Steps that no group could hold: never queued. */
  infeasibleSteps: number;
  meanWaitMs: number;
  maxWaitMs: number;
  /** Removals the policy asked for of a node that ran a step; must be 0 (such removals are refused). */
  busyNodeRemovalsRefused: number;
  ticks: number;
  events: ScaleEvent[];
}

interface SimNode {
  id: string;
  group: NodeGroup;
  askedAtMs: number;
  readyAtMs: number;
  free: NodeResources;
  running: number;
  /** When it last became idle (or joined). */
  idleSinceMs: number;
}

interface GroupQueue {
  steps: number[];
  head: number;
  /** Since the last tick. */
  added: number;
  dispatched: number;
  /**
   * Whether a step might start now: capacity was freed or joined, or the
   * queue was empty. Otherwise dispatching again would find what it found
   * last time (the head waits, FIFO), so it is skipped.
   */
  mightDispatch: boolean;
  /** When the next of the group's starting nodes joins. */
  nextJoinMs: number;
}

/** A min-heap of step completions by end time. */
class CompletionHeap {
  private readonly items: Array<{ endMs: number; step: number; node: SimNode }> = [];
  get size(): number {
    return this.items.length;
  }
  peekEnd(): number {
    return this.items[0]?.endMs ?? Infinity;
  }
  push(item: { endMs: number; step: number; node: SimNode }): void {
    const a = this.items;
    a.push(item);
    let i = a.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if ((a[parent] as typeof item).endMs <= item.endMs) break;
      a[i] = a[parent] as typeof item;
      i = parent;
    }
    a[i] = item;
  }
  pop(): { endMs: number; step: number; node: SimNode } | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (top === undefined || last === undefined || a.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= a.length) break;
      const right = left + 1;
      const child =
        right < a.length && (a[right] as typeof last).endMs < (a[left] as typeof last).endMs ? right : left;
      if ((a[child] as typeof last).endMs >= last.endMs) break;
      a[i] = a[child] as typeof last;
      i = child;
    }
    a[i] = last;
    return top;
  }
}

export function simulate(options: SimulationOptions): SimulationReport {
  const { groups, load, settings, tickMs, nodeStartupMs } = options;
  const stepMs = options.stepMs ?? Math.min(tickMs, 500);
  const maxSimulatedMs = options.maxSimulatedMs ?? 24 * 3_600_000;
  const autoscale = options.mode === 'autoscale';

  // Route every step once; steps sharing a resources object share the work.
  const routeCache = new Map<Resources | undefined, { group: string | null; amounts: ResourceAmount[] }>();
  const routeOf = (resources: Resources | undefined) => {
    let route = routeCache.get(resources);
    if (!route) {
      const placement = chooseNodeGroup(resources ?? {}, groups);
      route = {
        group: 'group' in placement ? placement.group : null,
        amounts: requestedAmounts(resources ?? {}),
      };
      routeCache.set(resources, route);
    }
    return route;
  };

  const queues = new Map<string, GroupQueue>(
    groups.map((g) => [
      g.name,
      { steps: [], head: 0, added: 0, dispatched: 0, mightDispatch: true, nextJoinMs: Infinity },
    ]),
  );
  const nodesByGroup = new Map<string, SimNode[]>(groups.map((g) => [g.name, []]));
  const nodeSecondsByGroup: Record<string, number> = Object.fromEntries(groups.map((g) => [g.name, 0]));
  const completions = new CompletionHeap();
  const events: ScaleEvent[] = [];
  const lastEvent = new Map<string, ScaleEvent>();
  let nextNodeNumber = 0;
  let state: PolicyState = { groups: {} };

  const report = {
    flaps: 0,
    peakNodes: 0,
    completedSteps: 0,
    infeasibleSteps: 0,
    totalWaitMs: 0,
    maxWaitMs: 0,
    busyNodeRemovalsRefused: 0,
    ticks: 0,
    lastCompletionMs: 0,
  };

  const startNode = (group: NodeGroup, askedAtMs: number, readyAtMs: number) => {
    const node: SimNode = {
      id: `${group.name}-${nextNodeNumber++}`,
      group,
      askedAtMs,
      readyAtMs,
      free: { ...group.node, custom: { ...group.node.custom } },
      running: 0,
      idleSinceMs: readyAtMs,
    };
    (nodesByGroup.get(group.name) as SimNode[]).push(node);
    const queue = queues.get(group.name) as GroupQueue;
    queue.nextJoinMs = Math.min(queue.nextJoinMs, readyAtMs);
  };
  const retireNode = (node: SimNode, atMs: number) => {
    nodeSecondsByGroup[node.group.name] =
      (nodeSecondsByGroup[node.group.name] ?? 0) + (atMs - node.askedAtMs) / 1000;
  };
  const nodeCount = () => groups.reduce((sum, g) => sum + (nodesByGroup.get(g.name) as SimNode[]).length, 0);
  const nodeHoursSoFar = (nowMs: number) => {
    let seconds = Object.values(nodeSecondsByGroup).reduce((sum, s) => sum + s, 0);
    for (const nodes of nodesByGroup.values()) for (const n of nodes) seconds += (nowMs - n.askedAtMs) / 1000;
    return seconds / 3600;
  };

  for (const group of groups) {
    const initial = autoscale ? (group.initialNodes ?? group.minNodes) : group.maxNodes;
    for (let i = 0; i < initial; i++) startNode(group, 0, 0);
  }
  report.peakNodes = nodeCount();

  const fits = (free: NodeResources, amounts: readonly ResourceAmount[]) =>
    amounts.every((a) => nodeAmount(free, a.name) + 1e-9 >= a.amount);
  const take = (free: NodeResources, amounts: readonly ResourceAmount[], sign: 1 | -1) => {
    for (const { name, amount } of amounts) {
      const delta = sign * amount;
      if (name === 'cpus') free.cpus += delta;
      else if (name === 'gpus') free.gpus += delta;
      else if (name === 'memoryMb') free.memoryMb += delta;
      else if (name === 'diskGb') free.diskGb += delta;
      else {
        const key = name.slice('custom '.length);
        free.custom[key] = (free.custom[key] ?? 0) + delta;
      }
    }
  };

  const finishUpTo = (nowMs: number) => {
    while (completions.size > 0 && completions.peekEnd() <= nowMs) {
      const done = completions.pop() as { endMs: number; step: number; node: SimNode };
      const step = load[done.step] as SimulatedStep;
      take(done.node.free, routeOf(step.resources).amounts, 1);
      done.node.running -= 1;
      (queues.get(done.node.group.name) as GroupQueue).mightDispatch = true;
      if (done.node.running === 0) done.node.idleSinceMs = done.endMs;
      report.completedSteps += 1;
      report.lastCompletionMs = Math.max(report.lastCompletionMs, done.endMs);
    }
  };

  const dispatch = (nowMs: number) => {
    for (const group of groups) {
      const queue = queues.get(group.name) as GroupQueue;
      if (nowMs >= queue.nextJoinMs) {
        queue.mightDispatch = true;
        const stillStarting = (nodesByGroup.get(group.name) as SimNode[]).filter((n) => n.readyAtMs > nowMs);
        queue.nextJoinMs = Math.min(Infinity, ...stillStarting.map((n) => n.readyAtMs));
      }
      if (!queue.mightDispatch || queue.head === queue.steps.length) continue;
      queue.mightDispatch = false;
      for (const node of nodesByGroup.get(group.name) as SimNode[]) {
        if (node.readyAtMs > nowMs) continue;
        while (queue.head < queue.steps.length) {
          const index = queue.steps[queue.head] as number;
          const step = load[index] as SimulatedStep;
          const amounts = routeOf(step.resources).amounts;
          if (!fits(node.free, amounts)) break;
          take(node.free, amounts, -1);
          node.running += 1;
          queue.head += 1;
          queue.dispatched += 1;
          const waitMs = nowMs - step.arrivalMs;
          report.totalWaitMs += waitMs;
          report.maxWaitMs = Math.max(report.maxWaitMs, waitMs);
          completions.push({ endMs: nowMs + step.durationMs, step: index, node });
        }
        if (queue.head === queue.steps.length) break;
      }
      if (queue.head > 4096 && queue.head * 2 > queue.steps.length) {
        queue.steps = queue.steps.slice(queue.head);
        queue.head = 0;
      }
    }
  };

  const observe = (group: NodeGroup, nowMs: number): GroupObservation => {
    const queue = queues.get(group.name) as GroupQueue;
    const nodes = nodesByGroup.get(group.name) as SimNode[];
    const headStep = queue.head < queue.steps.length ? load[queue.steps[queue.head] as number] : undefined;
    const observation: GroupObservation = {
      backlogCount: queue.steps.length - queue.head,
      backlogAgeSeconds: headStep ? (nowMs - headStep.arrivalMs) / 1000 : 0,
      addRate: queue.added / (tickMs / 1000),
      dispatchRate: queue.dispatched / (tickMs / 1000),
      runningSteps: nodes.reduce((sum, n) => sum + n.running, 0),
      pendingDemand: options.describePendingDemand ? describeQueue(queue, load) : null,
      startingNodes: nodes.filter((n) => n.readyAtMs > nowMs).length,
      nodes: nodes
        .filter((n) => n.readyAtMs <= nowMs)
        .map((n) => ({
          nodeId: n.id,
          alive: true,
          total: n.group.node,
          available: n.free,
          idleSinceMs: n.running > 0 ? null : n.idleSinceMs,
          draining: false,
        })),
    };
    queue.added = 0;
    queue.dispatched = 0;
    return observation;
  };

  const tick = (nowMs: number) => {
    report.ticks += 1;
    const budget = settings.budget ? { ...settings.budget, nodeHoursUsed: nodeHoursSoFar(nowMs) } : undefined;
    const decision = decide({
      nowMs,
      groups,
      observations: Object.fromEntries(groups.map((g) => [g.name, observe(g, nowMs)])),
      settings: { ...settings, budget },
      state,
    });
    state = decision.state;
    for (const choice of decision.groups) {
      const group = groups.find((g) => g.name === choice.group) as NodeGroup;
      for (let i = 0; i < choice.add; i++) startNode(group, nowMs, nowMs + nodeStartupMs);
      let removed = 0;
      if (choice.remove.length > 0) {
        const toRemove = new Set(choice.remove);
        const kept: SimNode[] = [];
        for (const node of nodesByGroup.get(group.name) as SimNode[]) {
          if (!toRemove.has(node.id)) kept.push(node);
          else if (node.running > 0) {
            report.busyNodeRemovalsRefused += 1;
            kept.push(node);
          } else {
            retireNode(node, nowMs);
            removed += 1;
          }
        }
        nodesByGroup.set(group.name, kept);
      }
      if (choice.add > 0) recordEvent({ atMs: nowMs, group: group.name, direction: 'up', nodes: choice.add });
      if (removed > 0) recordEvent({ atMs: nowMs, group: group.name, direction: 'down', nodes: removed });
    }
    report.peakNodes = Math.max(report.peakNodes, nodeCount());
  };

  const recordEvent = (event: ScaleEvent) => {
    const previous = lastEvent.get(event.group);
    if (
      previous &&
      previous.direction !== event.direction &&
      event.atMs - previous.atMs < settings.cooldownMs
    ) {
      report.flaps += 1;
    }
    lastEvent.set(event.group, event);
    events.push(event);
  };

  const settled = () =>
    !autoscale ||
    groups.every((g) => {
      const nodes = nodesByGroup.get(g.name) as SimNode[];
      return nodes.length <= g.minNodes;
    });

  let nextArrival = 0;
  let nowMs = 0;
  let nextTickMs = 0;
  const firstArrivalMs = load[0]?.arrivalMs ?? 0;
  for (;;) {
    finishUpTo(nowMs);
    while (nextArrival < load.length && (load[nextArrival] as SimulatedStep).arrivalMs <= nowMs) {
      const route = routeOf((load[nextArrival] as SimulatedStep).resources);
      if (route.group === null) report.infeasibleSteps += 1;
      else {
        const queue = queues.get(route.group) as GroupQueue;
        if (queue.head === queue.steps.length) queue.mightDispatch = true;
        queue.steps.push(nextArrival);
        queue.added += 1;
      }
      nextArrival += 1;
    }
    dispatch(nowMs);
    if (autoscale && nowMs >= nextTickMs) {
      tick(nowMs);
      nextTickMs += tickMs;
    }
    const loadDone =
      nextArrival === load.length &&
      completions.size === 0 &&
      [...queues.values()].every((q) => q.head === q.steps.length);
    if ((loadDone && settled()) || nowMs >= maxSimulatedMs) break;
    nowMs += stepMs;
  }

  const endMs = autoscale ? nowMs : Math.max(report.lastCompletionMs, firstArrivalMs);
  for (const nodes of nodesByGroup.values())
    for (const node of nodes) retireNode(node, Math.max(endMs, node.askedAtMs));
  const nodeSeconds = Object.values(nodeSecondsByGroup).reduce((sum, s) => sum + s, 0);
  const cost = groups.reduce(
    (sum, g) => sum + ((nodeSecondsByGroup[g.name] ?? 0) / 3600) * g.costPerNodeHour,
    0,
  );
  return {
    mode: options.mode,
    makespanMs: report.lastCompletionMs - firstArrivalMs,
    simulatedMs: endMs,
    nodeSeconds,
    nodeSecondsByGroup,
    cost,
    peakNodes: report.peakNodes,
    scaleEvents: events.length,
    scaleUps: events.filter((e) => e.direction === 'up').length,
    scaleDowns: events.filter((e) => e.direction === 'down').length,
    flaps: report.flaps,
    completedSteps: report.completedSteps,
    unfinishedSteps: load.length - report.completedSteps - report.infeasibleSteps,
    infeasibleSteps: report.infeasibleSteps,
    meanWaitMs:
      report.completedSteps + completions.size > 0
        ? report.totalWaitMs / (report.completedSteps + completions.size)
        : 0,
    maxWaitMs: report.maxWaitMs,
    busyNodeRemovalsRefused: report.busyNodeRemovalsRefused,
    ticks: report.ticks,
    events,
  };
}

/** The queue's resource requests in order, consecutive steps with the same resources object merged. */
function describeQueue(queue: GroupQueue, load: readonly SimulatedStep[]): PendingRequest[] {
  const runs: PendingRequest[] = [];
  let lastResources: Resources | undefined | null = null;
  for (let i = queue.head; i < queue.steps.length; i++) {
    const resources = (load[queue.steps[i] as number] as SimulatedStep).resources;
    const last = runs[runs.length - 1];
    if (last && resources === lastResources) last.count += 1;
    else runs.push({ resources: resources ?? {}, count: 1 });
    lastResources = resources;
  }
  return runs;
}
