/**
 * The autoscaler's two activities, run by the pipeline worker for the
 * autoscaler workflow (workflows/autoscaler/autoscaler.ts):
 *
 * - `observeCluster`: per node group, Temporal's backlog of the group's task
 *   queue, the group's nodes as its provider lists them, and Ray's view of
 *   those nodes and of its unmet demand, joined into the policy's
 *   GroupObservation (observe.ts). A group whose sources cannot be read is left
 *   out, and the policy holds it as it is.
 * - `applyScaling`: carries out one decision, group by group. Thin: adds what
 *   the decision adds; for removals it drains each node through Ray with the
 *   idle-termination reason (Ray refuses a node that runs anything) and hands
 *   only the accepted ones to the provider. It decides nothing, and does not
 *   retry: the next tick observes again and decides again.
 */
import { ApplicationFailure } from '@temporalio/activity';
import type { Logger } from 'pino';
import { z } from 'zod';
import { NODE_GROUP_LABEL, type NodeGroup } from '../../core/schemas/node-groups';
import { MAX_OBSERVE_WAIT_MS } from '../../core/schemas/autoscaler';
import { nodeGroupTaskQueue } from '../../core/task-queues';
import type { AppliedGroup, ApplyResult, ClusterObservation } from '../../core/messages/autoscaler';
import type { AutoscalerMetrics } from './metrics';
import { groupBacklogSteps, matchRayNode, observeGroup } from './observe';
import { groupDecisionSchema, type GroupDecision } from '../../core/autoscaling/policy-types';
import { NodeRemovalRefusedError, type NodeProvider } from './providers/provider';
import { drainRayNode, readRayClusterState, type BridgeCaller } from './ray-cluster';
import { readTaskQueueBacklog, type DescribeTaskQueue } from './temporal-backlog';
import { describeZodError } from '../../core/issues';

export interface AutoscalerActivityDeps {
  workflowService: DescribeTaskQueue;
  namespace: string;
  bridge: BridgeCaller;
  nodeGroups: readonly NodeGroup[];
  /** The provider that serves a group (its `provider` field); throws when that provider is not configured. */
  providerFor(group: NodeGroup): NodeProvider;
  metrics?: AutoscalerMetrics;
  logger: Logger;
}

/** How often observeCluster's wait for new backlog reads it (Ray's state, one DescribeTaskQueue per group). */
export const BACKLOG_POLL_MS = 200;

export const observeInputSchema = z
  .object({
    /** The groups to observe, by name; null: every group the worker serves. */
    groups: z.array(z.string().min(1)).min(1).nullable().default(null),
    /**
     * Before observing, wait up to this long for backlog to appear on a group that had none
     * in `backlogSeen`, so that new demand is acted on within a poll, not at the next tick.
     */
    waitForBacklogMs: z.number().int().min(0).max(MAX_OBSERVE_WAIT_MS).default(0),
    /** The backlog per group the previous observation saw; a group not named counts as 0. */
    backlogSeen: z.record(z.string(), z.number().int().min(0)).default({}),
  })
  .strict();

export const applyInputSchema = z.object({ decisions: z.array(groupDecisionSchema) }).strict();

export type ObserveInput = z.input<typeof observeInputSchema>;
export type ApplyInput = z.input<typeof applyInputSchema>;

export type { ApplyResult, ClusterObservation } from '../../core/messages/autoscaler';

export function createAutoscalerActivities(deps: AutoscalerActivityDeps) {
  const { logger } = deps;

  function selectGroups(names: string[] | null): NodeGroup[] {
    if (names === null) return [...deps.nodeGroups];
    const unknown = names.filter((n) => !deps.nodeGroups.some((g) => g.name === n));
    if (unknown.length > 0) {
      throw ApplicationFailure.nonRetryable(
        `groups: unknown node group ${unknown.map((n) => `"${n}"`).join(', ')} (this worker serves: ${deps.nodeGroups.map((g) => g.name).join(', ')})`,
        'UnknownNodeGroup',
      );
    }
    return deps.nodeGroups.filter((g) => names.includes(g.name));
  }

  /**
   * Resolves when a group the last observation saw with no backlog has some (as the
   * observation counts it: its Temporal queue and what waits inside Ray for one of its
   * nodes), or after `waitMs`. Only that edge: more steps joining a backlog the loop already
   * acts on wait for the tick, so a steady stream into a busy group does not tick at the
   * poll's rate.
   */
  async function newBacklog(
    groups: readonly NodeGroup[],
    seen: Record<string, number>,
    waitMs: number,
  ): Promise<void> {
    const until = Date.now() + waitMs;
    const quiet = groups.filter((group) => (seen[group.name] ?? 0) === 0);
    for (;;) {
      // Unreadable sources are reported by the observation itself; here they only mean "no new backlog seen".
      const ray = quiet.length > 0 ? await readRayClusterState(deps.bridge).catch(() => null) : null;
      const appeared = ray
        ? await Promise.all(
            quiet.map((group) =>
              readTaskQueueBacklog(deps.workflowService, deps.namespace, nodeGroupTaskQueue(group.name)).then(
                (backlog) => groupBacklogSteps(group.name, backlog, ray).total > 0,
                () => false,
              ),
            ),
          )
        : [];
      const left = until - Date.now();
      if (appeared.includes(true) || left <= 0) return;
      await new Promise((resolve) =>
        setTimeout(resolve, quiet.length > 0 ? Math.min(BACKLOG_POLL_MS, left) : left),
      );
    }
  }

  async function observeCluster(rawInput: ObserveInput): Promise<ClusterObservation> {
    const input = parseInput(observeInputSchema, rawInput, 'observeCluster');
    const groups = selectGroups(input.groups);
    if (input.waitForBacklogMs > 0) await newBacklog(groups, input.backlogSeen, input.waitForBacklogMs);
    const ray = await readRayClusterState(deps.bridge);
    const observation: ClusterObservation = {
      nowMs: ray.readAtMs,
      groups,
      observations: {},
      billableNodes: {},
      notes: {},
    };
    const note = (group: string, text: string) => (observation.notes[group] ??= []).push(text);
    await Promise.all(
      groups.map(async (group) => {
        try {
          const [backlog, providerNodes] = await Promise.all([
            readTaskQueueBacklog(deps.workflowService, deps.namespace, nodeGroupTaskQueue(group.name)),
            deps.providerFor(group).listNodes(group),
          ]);
          const observed = observeGroup({ group, backlog, providerNodes, ray });
          observation.observations[group.name] = observed.observation;
          observation.billableNodes[group.name] = observed.billableNodes;
          if (observed.unmanagedNodes.length > 0)
            note(
              group.name,
              `${observed.unmanagedNodes.length} Ray node(s) labelled ${NODE_GROUP_LABEL}=${group.name} that the ${group.provider} provider does not know: counted by the worker's admission, never removed`,
            );
          if (observed.rayPendingSteps > 0)
            note(group.name, `${observed.rayPendingSteps} step(s) wait inside Ray for a node`);
          deps.metrics?.recordObservation(group.name, observed, ray.readAtMs);
        } catch (err) {
          logger.warn({ err, group: group.name }, 'could not observe node group');
          note(group.name, `not observed: ${errorText(err)}`);
        }
      }),
    );
    return observation;
  }

  async function applyGroup(decision: GroupDecision): Promise<AppliedGroup> {
    const applied: AppliedGroup = { group: decision.group, added: 0, removed: [], refused: [], error: null };
    const group = deps.nodeGroups.find((g) => g.name === decision.group);
    if (!group) return { ...applied, error: `unknown node group "${decision.group}"` };
    if (decision.add === 0 && decision.remove.length === 0) return applied;
    const log = logger.child({ group: group.name });
    try {
      const provider = deps.providerFor(group);
      if (decision.add > 0) {
        await provider.addNodes(group, decision.add);
        applied.added = decision.add;
        log.info({ add: decision.add, desired: decision.desired, reasons: decision.reasons }, 'scaling up');
      }
      if (decision.remove.length > 0) {
        const drained = await drainForRemoval(provider, group, decision.remove, applied);
        if (drained.length > 0) {
          await provider.removeNodes(group, drained);
          applied.removed = drained;
          log.info({ removed: drained, reasons: decision.reasons }, 'scaled down');
        }
      }
    } catch (err) {
      if (err instanceof NodeRemovalRefusedError) {
        applied.removed = [...err.removed];
        applied.refused.push(...err.refused);
      } else {
        applied.error = errorText(err);
      }
      log.error({ err }, 'could not apply the scaling decision');
    }
    return applied;
  }

  /**
   * Drains each node through Ray for idle termination; returns the nodes Ray
   * accepted (or that were draining already). Ray refuses a node that runs
   * anything, which is what keeps a busy node from ever being removed: the
   * policy only picks idle nodes, and this closes the window between its
   * observation and now.
   */
  async function drainForRemoval(
    provider: NodeProvider,
    group: NodeGroup,
    nodeIds: readonly string[],
    applied: AppliedGroup,
  ): Promise<string[]> {
    const [ray, providerNodes] = await Promise.all([
      readRayClusterState(deps.bridge),
      provider.listNodes(group),
    ]);
    const groupRayNodes = ray.nodes.filter((n) => n.labels[NODE_GROUP_LABEL] === group.name);
    const accepted: string[] = [];
    for (const nodeId of nodeIds) {
      const providerNode = providerNodes.find((n) => n.nodeId === nodeId);
      const rayNode = providerNode && matchRayNode(providerNode, groupRayNodes);
      if (!providerNode || !rayNode) {
        applied.refused.push({ nodeId, reason: 'not a live Ray node of the group any more' });
        continue;
      }
      if (rayNode.status === 'DRAINING') {
        accepted.push(nodeId);
        continue;
      }
      const answer = await drainRayNode(deps.bridge, rayNode.nodeId);
      if (answer.accepted) accepted.push(nodeId);
      else
        applied.refused.push({
          nodeId,
          reason: `Ray refused the drain: ${answer.rejection ?? 'no reason given'}`,
        });
    }
    return accepted;
  }

  async function applyScaling(rawInput: ApplyInput): Promise<ApplyResult> {
    const input = parseInput(applyInputSchema, rawInput, 'applyScaling');
    const groups = await Promise.all(input.decisions.map(applyGroup));
    input.decisions.forEach((decision, i) => deps.metrics?.recordApplied(decision, groups[i]!));
    return { groups };
  }

  return { observeCluster, applyScaling };
}

export type AutoscalerActivities = ReturnType<typeof createAutoscalerActivities>;

function parseInput<T>(schema: z.ZodType<T>, raw: unknown, activity: string): T {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(
      `${activity}: invalid input: ${describeZodError(parsed.error)}`,
      'InvalidAutoscalerInput',
    );
  }
  return parsed.data;
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
