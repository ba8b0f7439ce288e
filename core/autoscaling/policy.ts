/**
 * The autoscaling policy: from one tick's observation of every node group, how
 * many nodes to add to each group and which idle nodes to remove. Pure: no
 * I/O, no clock (the tick's time is an input), no randomness, so the same
 * input always gives the same decision and the simulator can replay it.
 *
 * The rules, per group:
 * - Pending steps are packed, in queue order, first onto the free capacity of
 *   the nodes the group has (busy nodes first, then nodes still starting, then
 *   the most recently idle), then onto as few new nodes as hold the rest. That
 *   is the cheapest set of this group's nodes for the backlog; which group a
 *   step waits in was already decided by cost when it was routed
 *   (workflows/placement.ts: the cheapest group whose node holds it).
 * - Desired nodes = current + new nodes needed − nodes idle past the idle
 *   timeout that no pending step would use, never below what running steps
 *   need, then clamped to minNodes..maxNodes.
 * - Scale-up is immediate but at most `maxScaleUpStep` nodes per tick, and an
 *   optional node-hour budget caps it (and says so).
 * - Scale-down removes only nodes idle longer than the idle timeout, longest
 *   idle first; never a busy node, never below running demand.
 * - Cooldown: after a scale event, the opposite direction waits `cooldownMs`.
 *   The one exception is a group with pending work and no node at all: waiting
 *   would starve it, so it scales up anyway (and says so).
 * - Up to minNodes, nodes are added whatever the step limit, the cooldown or
 *   the budget say: the floor is configuration, not a judgement.
 * Ties (nodes idle since the same moment) keep the order they were observed
 * in, so the decision depends on nothing but the input.
 */
import {
  DEFAULT_STEP_CPUS,
  nodeAmount,
  nodeShortfall,
  requestedAmounts,
  type NodeAmounts,
} from '../placement';
import type { NodeGroup } from '../schemas/node-groups';
import type {
  GroupDecision,
  GroupObservation,
  GroupScalingState,
  ObservedNode,
  PendingRequest,
  PolicyDecision,
  PolicyInput,
  PolicySettings,
} from './policy-types';

/** Guards the fit test against float dust (0.1 + 0.2 CPUs). */
const EPSILON = 1e-9;
const MS_PER_HOUR = 3_600_000;

export function decide(input: PolicyInput): PolicyDecision {
  const plans = input.groups.map((group) =>
    planGroup(
      group,
      input.observations[group.name],
      input.settings,
      input.state.groups[group.name] ?? { lastScaleUpMs: null, lastScaleDownMs: null },
      input.nowMs,
    ),
  );
  applyBudget(plans, input.settings);

  const groups: GroupDecision[] = plans.map((plan) => ({
    group: plan.group.name,
    current: plan.current,
    desired: plan.desired,
    add: plan.requiredAdd + plan.optionalAdd,
    remove: plan.remove,
    infeasibleSteps: plan.infeasibleSteps,
    reasons: plan.reasons,
  }));

  const state: PolicyDecision['state'] = { groups: {} };
  for (const decision of groups) {
    const previous = input.state.groups[decision.group];
    state.groups[decision.group] = {
      lastScaleUpMs: decision.add > 0 ? input.nowMs : (previous?.lastScaleUpMs ?? null),
      lastScaleDownMs: decision.remove.length > 0 ? input.nowMs : (previous?.lastScaleDownMs ?? null),
    };
  }
  return { nowMs: input.nowMs, groups, state };
}

/** One group's decision while it is being made; the budget is shared, so adds settle last. */
interface GroupPlan {
  group: NodeGroup;
  current: number;
  desired: number;
  /** Adds that no cap may hold back: up to minNodes. */
  requiredAdd: number;
  /** Adds beyond minNodes, which the budget may cap. */
  optionalAdd: number;
  remove: string[];
  infeasibleSteps: number;
  backlogAgeSeconds: number;
  reasons: string[];
}

function planGroup(
  group: NodeGroup,
  observation: GroupObservation | undefined,
  settings: PolicySettings,
  state: GroupScalingState,
  nowMs: number,
): GroupPlan {
  if (!observation) {
    return {
      group,
      current: 0,
      desired: 0,
      requiredAdd: 0,
      optionalAdd: 0,
      remove: [],
      infeasibleSteps: 0,
      backlogAgeSeconds: 0,
      reasons: ['not observed this tick: holding as is'],
    };
  }
  const reasons: string[] = [];
  const usable = observation.nodes.filter((n) => n.alive && !n.draining);
  const draining = observation.nodes.filter((n) => n.alive && n.draining).length;
  const dead = observation.nodes.length - usable.length - draining;
  if (draining > 0) reasons.push(`${draining} node(s) draining, not counted`);
  if (dead > 0) reasons.push(`${dead} dead node(s) ignored`);
  const current = usable.length + observation.startingNodes;

  const pending = pendingRequests(observation, settings, reasons);
  const packing = packPending(group, usable, observation.startingNodes, pending, group.maxNodes - current);
  describePacking(group, packing, reasons);

  const busyNodes = usable.filter((n) => n.idleSinceMs === null).length;
  const runningFloor = Math.max(busyNodes, nodesForDefaultSteps(group, observation.runningSteps));
  const idlePastTimeout = usable
    .filter(
      (n): n is ObservedNode & { idleSinceMs: number } =>
        n.idleSinceMs !== null &&
        nowMs - n.idleSinceMs >= settings.idleTimeoutMs &&
        !packing.nodesReceivingWork.has(n.nodeId),
    )
    .sort((a, b) => a.idleSinceMs - b.idleSinceMs); // stable: ties keep the observed order

  const fromDemand = current + packing.newNodes - idlePastTimeout.length;
  const desired = clamp(Math.max(fromDemand, runningFloor), group.minNodes, group.maxNodes);
  if (runningFloor > fromDemand && runningFloor > group.minNodes) {
    reasons.push(`running steps need ${runningFloor} node(s)`);
  }
  if (packing.beyondMax > 0 || Math.max(fromDemand, runningFloor) > group.maxNodes) {
    reasons.push(`clamped to maxNodes ${group.maxNodes}`);
  }
  if (Math.max(fromDemand, runningFloor) < group.minNodes) reasons.push(`held at minNodes ${group.minNodes}`);

  const plan: GroupPlan = {
    group,
    current,
    desired,
    requiredAdd: 0,
    optionalAdd: 0,
    remove: [],
    infeasibleSteps: packing.infeasibleSteps,
    backlogAgeSeconds: observation.backlogAgeSeconds,
    reasons,
  };

  if (desired > current) {
    plan.requiredAdd = Math.max(0, group.minNodes - current);
    const sinceDown = state.lastScaleDownMs === null ? Infinity : nowMs - state.lastScaleDownMs;
    const starving = current === 0 && packing.feasibleSteps > 0;
    if (sinceDown < settings.cooldownMs && !starving) {
      reasons.push(
        `scale-up held by cooldown: last scale-down ${seconds(sinceDown)} ago (cooldown ${seconds(settings.cooldownMs)})`,
      );
    } else {
      if (sinceDown < settings.cooldownMs)
        reasons.push('cooldown overridden: pending work and no node to run it');
      const wanted = Math.min(desired - current, Math.max(settings.maxScaleUpStep, plan.requiredAdd));
      if (wanted < desired - current) reasons.push(`adding at most ${settings.maxScaleUpStep} per tick`);
      plan.optionalAdd = wanted - plan.requiredAdd;
    }
  } else if (desired < current) {
    // Even above maxNodes, never remove below what running steps need.
    const keep = Math.max(desired, runningFloor);
    const sinceUp = state.lastScaleUpMs === null ? Infinity : nowMs - state.lastScaleUpMs;
    if (sinceUp < settings.cooldownMs) {
      reasons.push(
        `scale-down held by cooldown: last scale-up ${seconds(sinceUp)} ago (cooldown ${seconds(settings.cooldownMs)})`,
      );
    } else {
      plan.remove = idlePastTimeout.slice(0, Math.max(0, current - keep)).map((n) => n.nodeId);
      if (plan.remove.length > 0) {
        reasons.push(
          `removing ${plan.remove.length} node(s) idle longer than ${seconds(settings.idleTimeoutMs)}: ${listSome(plan.remove)}`,
        );
      }
      const waiting = current - desired - plan.remove.length;
      if (waiting > 0) reasons.push(`${waiting} node(s) above desired are busy or not idle long enough yet`);
    }
  }
  return plan;
}

/**
 * The backlog as resource requests in queue order: the described ones, then
 * default steps for the rest of the backlog, then (when steps arrive faster
 * than they are dispatched) the steps expected within the anticipation window.
 */
function pendingRequests(
  observation: GroupObservation,
  settings: PolicySettings,
  reasons: string[],
): PendingRequest[] {
  const described = observation.pendingDemand ?? [];
  const describedCount = described.reduce((sum, r) => sum + r.count, 0);
  const growthPerSecond = Math.max(0, observation.addRate - observation.dispatchRate);
  const anticipated = Math.ceil(growthPerSecond * settings.anticipationSeconds - EPSILON);
  if (anticipated > 0) {
    reasons.push(
      `anticipating ${anticipated} more step(s): queue grows ${growthPerSecond.toFixed(2)}/s, looking ${settings.anticipationSeconds}s ahead`,
    );
  }
  const defaultSteps = Math.max(0, observation.backlogCount - describedCount) + anticipated;
  return defaultSteps > 0 ? [...described, { resources: {}, count: defaultSteps }] : described;
}

interface Packing {
  pendingSteps: number;
  feasibleSteps: number;
  infeasibleSteps: number;
  /** The first request that no node of the group can hold, and why. */
  infeasibleExample: string | null;
  placedOnCurrentNodes: number;
  newNodes: number;
  /** Steps that would need nodes beyond maxNodes. */
  beyondMax: number;
  nodesReceivingWork: Set<string>;
}

/** A node's free capacity during packing; nodeId null for nodes still starting or yet to add. */
interface Bin {
  nodeId: string | null;
  isNew: boolean;
  free: number[];
}

/**
 * First fit in queue order: the order in which the queue will drain, and the
 * reason more backlog never asks for fewer nodes (later steps cannot move
 * earlier ones). Identical requests are placed in bulk, and a bin that could
 * not take a request shape is never tried again for that shape (free capacity
 * only shrinks), so 100,000 steps over 1,000 nodes pack in linear time.
 */
function packPending(
  group: NodeGroup,
  usable: readonly ObservedNode[],
  startingNodes: number,
  pending: readonly PendingRequest[],
  maxNewNodes: number,
): Packing {
  const packing: Packing = {
    pendingSteps: 0,
    feasibleSteps: 0,
    infeasibleSteps: 0,
    infeasibleExample: null,
    placedOnCurrentNodes: 0,
    newNodes: 0,
    beyondMax: 0,
    nodesReceivingWork: new Set(),
  };
  const dimensions = [...new Set(pending.flatMap((r) => requestedAmounts(r.resources).map((a) => a.name)))];
  const capacityOf = (node: NodeAmounts): number[] => dimensions.map((d) => nodeAmount(node, d));

  const busy = usable.filter((n) => n.idleSinceMs === null);
  const mostRecentlyIdle = usable
    .filter((n): n is ObservedNode & { idleSinceMs: number } => n.idleSinceMs !== null)
    .sort((a, b) => b.idleSinceMs - a.idleSinceMs); // stable: ties keep the observed order
  const bins: Bin[] = [
    ...busy.map((n) => ({ nodeId: n.nodeId, isNew: false, free: capacityOf(n.available) })),
    ...Array.from({ length: startingNodes }, () => ({
      nodeId: null,
      isNew: false,
      free: capacityOf(group.node),
    })),
    ...mostRecentlyIdle.map((n) => ({ nodeId: n.nodeId, isNew: false, free: capacityOf(n.available) })),
  ];
  const firstCandidateBin = new Map<string, number>();

  for (const request of pending) {
    packing.pendingSteps += request.count;
    const shortfall = nodeShortfall(request.resources, group.node);
    if (shortfall !== null) {
      packing.infeasibleSteps += request.count;
      packing.infeasibleExample ??= shortfall;
      continue;
    }
    packing.feasibleSteps += request.count;
    const asked = requestedAmounts(request.resources);
    const demand = dimensions.map((d) => asked.find((a) => a.name === d)?.amount ?? 0);
    const shapeKey = demand.join(',');
    let remaining = request.count;
    let index = firstCandidateBin.get(shapeKey) ?? 0;
    while (remaining > 0) {
      if (index === bins.length) {
        if (packing.newNodes >= maxNewNodes) {
          packing.beyondMax += remaining;
          break;
        }
        bins.push({ nodeId: null, isNew: true, free: capacityOf(group.node) });
        packing.newNodes += 1;
      }
      const bin = bins[index] as Bin;
      const taken = Math.min(remaining, fitCount(bin.free, demand));
      if (taken > 0) {
        demand.forEach((amount, d) => (bin.free[d] = (bin.free[d] ?? 0) - amount * taken));
        remaining -= taken;
        if (!bin.isNew) packing.placedOnCurrentNodes += taken;
        if (bin.nodeId !== null) packing.nodesReceivingWork.add(bin.nodeId);
      }
      if (remaining > 0) index += 1;
    }
    firstCandidateBin.set(shapeKey, index);
  }
  return packing;
}

/** How many requests of this shape fit in the free capacity (unbounded for a request of nothing). */
function fitCount(free: readonly number[], demand: readonly number[]): number {
  let fits = Infinity;
  demand.forEach((amount, d) => {
    if (amount > 0) fits = Math.min(fits, Math.floor(((free[d] ?? 0) + EPSILON) / amount));
  });
  return Math.max(0, fits);
}

function describePacking(group: NodeGroup, packing: Packing, reasons: string[]): void {
  if (packing.infeasibleSteps > 0) {
    reasons.push(
      `${packing.infeasibleSteps} pending step(s) can never fit a ${group.name} node: ${packing.infeasibleExample ?? ''}`,
    );
  }
  if (packing.feasibleSteps === 0) return;
  const parts = [
    `${packing.feasibleSteps} pending step(s)`,
    `${packing.placedOnCurrentNodes} fit on current nodes`,
  ];
  if (packing.newNodes > 0) parts.push(`${packing.newNodes} more node(s) needed`);
  if (packing.beyondMax > 0)
    parts.push(`${packing.beyondMax} step(s) wait beyond maxNodes ${group.maxNodes}`);
  reasons.push(parts.join(', '));
}

/** Nodes that running steps occupy at the least, taking each as a default one-CPU step. */
function nodesForDefaultSteps(group: NodeGroup, steps: number): number {
  if (steps === 0) return 0;
  const perNode = Math.floor((group.node.cpus + EPSILON) / DEFAULT_STEP_CPUS);
  return perNode > 0 ? Math.ceil(steps / perNode) : 0;
}

/**
 * Shares the budget's room among the groups that want to grow, the longest
 * waiting backlog first. Adds up to minNodes are never held back, but they use
 * the room first.
 */
function applyBudget(plans: GroupPlan[], settings: PolicySettings): void {
  const budget = settings.budget;
  if (!budget) return;
  const lookaheadHours = budget.lookaheadMs / MS_PER_HOUR;
  const left = budget.nodeHours - budget.nodeHoursUsed;
  const affordableNodes = left > 0 ? Math.floor(left / lookaheadHours + EPSILON) : 0;
  const nodesAfterRequiredAdds = plans.reduce((sum, p) => sum + p.current + p.requiredAdd, 0);
  let room = Math.max(0, affordableNodes - nodesAfterRequiredAdds);
  const growing = plans
    .filter((p) => p.optionalAdd > 0)
    .sort((a, b) => b.backlogAgeSeconds - a.backlogAgeSeconds || compareText(a.group.name, b.group.name));
  for (const plan of growing) {
    const wanted = plan.optionalAdd;
    plan.optionalAdd = Math.min(wanted, room);
    room -= plan.optionalAdd;
    if (plan.optionalAdd < wanted) {
      const used = `${budget.nodeHoursUsed.toFixed(2)} of ${budget.nodeHours} node-hours used`;
      plan.reasons.push(
        left <= 0
          ? `budget exhausted (${used}): adding none of ${wanted} wanted`
          : `budget caps scale-up (${used}): the rest pays for ${affordableNodes} node(s) over the next ${seconds(budget.lookaheadMs)}, ${nodesAfterRequiredAdds} counted already; adding ${plan.optionalAdd} of ${wanted} wanted`,
      );
    }
  }
}

function clamp(value: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, value));
}

function compareText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Node ids for a reason: the first ten, so that a reason stays readable at a thousand nodes. */
function listSome(ids: readonly string[]): string {
  const shown = ids.slice(0, 10).join(', ');
  return ids.length > 10 ? `${shown} and ${ids.length - 10} more` : shown;
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)}s`;
}
