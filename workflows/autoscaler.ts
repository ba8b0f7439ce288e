/**
 * The autoscaler: one long-running workflow per cluster (workflow id
 * `pantheon-autoscaler`) that resizes each node group from its backlog. Each
 * tick: observe (activity) → decide (the pure policy, run right here: it is
 * deterministic and imports nothing but schemas and pure code) → apply
 * (activity). Both activities run every tick, whatever the decision, so the
 * commands this workflow issues never depend on the policy's output and a
 * change to the policy can never break the replay of a running autoscaler.
 *
 * Every decision is in history (the observation is the observe activity's
 * result, the decision is the apply activity's input, what was done its
 * result) and the latest is in the Web UI's current details. Pause, resume and
 * stop are signals, settings change through the `configure` update, and the
 * `status` query returns the state. It continues as new when Temporal suggests
 * it (or after `maxTicksPerRun` ticks), carrying the policy's state, the
 * budget's usage and the recent scale events.
 */
import {
  ApplicationFailure,
  ActivityFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  defineQuery,
  defineSignal,
  defineUpdate,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { AutoscalerActivities, ApplyResult, ClusterObservation } from '../activities/scaling/activities';
// The policy is pure and deterministic (no I/O, no clock, no randomness): workflow-safe.
import { decide } from '../activities/scaling/policy'; // eslint-disable-line no-restricted-imports
import { policyInputSchema, type PolicyDecision } from '../activities/scaling/policy-types'; // eslint-disable-line no-restricted-imports
import {
  autoscalerCarrySchema,
  autoscalerInputSchema,
  autoscalerSettingsPatchSchema,
  describeZodIssue,
  MAX_OBSERVE_WAIT_MS,
  SCALE_EVENTS_KEPT,
  type AutoscalerCarry,
  type AutoscalerInput,
  type AutoscalerSettings,
  type AutoscalerSettingsPatch,
  type ScaleEvent,
} from './schemas/autoscaler';

export { AUTOSCALER_WORKFLOW_ID } from './schemas/autoscaler';

export const pauseSignal = defineSignal<[]>('pause');
export const resumeSignal = defineSignal<[]>('resume');
/** Ends the loop after the tick under way; the workflow completes with its summary. */
export const stopSignal = defineSignal<[{ reason?: string }?]>('stop');
/** Changes settings (any part of them); answers with the settings now in force. */
export const configureUpdate = defineUpdate<AutoscalerSettings, [AutoscalerSettingsPatch]>('configure');
export const statusQuery = defineQuery<AutoscalerStatus>('status');

export interface TickRecord {
  tick: number;
  atMs: number;
  decision: PolicyDecision['groups'];
  applied: ApplyResult['groups'] | null;
  notes: ClusterObservation['notes'];
  error: string | null;
}

export interface AutoscalerStatus {
  paused: boolean;
  stopping: boolean;
  settings: AutoscalerSettings;
  groups: string[] | null;
  ticks: number;
  runs: number;
  nodeHoursUsed: number;
  lastTick: TickRecord | null;
  /** The most recent scale events, oldest first. */
  events: ScaleEvent[];
}

export interface AutoscalerSummary {
  stoppedBecause: string;
  ticks: number;
  runs: number;
  nodeHoursUsed: number;
  events: ScaleEvent[];
}

const { observeCluster, applyScaling } = proxyActivities<AutoscalerActivities>({
  startToCloseTimeout: '1 minute',
  // No retries underneath the loop: the next tick observes again and decides again.
  retry: { maximumAttempts: 1 },
});

const MS_PER_HOUR = 3_600_000;

export async function autoscaler(rawInput: unknown = {}): Promise<AutoscalerSummary> {
  const parsed = autoscalerInputSchema.safeParse(rawInput ?? {});
  if (!parsed.success) {
    throw ApplicationFailure.create({
      type: 'InvalidAutoscalerInput',
      message: `invalid autoscaler input: ${describeZodIssue(parsed.error)}`,
      nonRetryable: true,
    });
  }
  const input: AutoscalerInput = parsed.data;
  let settings: AutoscalerSettings = {
    tickIntervalMs: input.tickIntervalMs,
    idleTimeoutMs: input.idleTimeoutMs,
    cooldownMs: input.cooldownMs,
    maxScaleUpStep: input.maxScaleUpStep,
    anticipationSeconds: input.anticipationSeconds,
    budget: input.budget,
  };
  const carry: AutoscalerCarry = autoscalerCarrySchema.parse(input.carry ?? {});
  let paused = input.paused;
  let stopReason: string | null = null;
  let wake = false;
  let lastTick: TickRecord | null = null;

  setHandler(pauseSignal, () => {
    paused = true;
    wake = true;
  });
  setHandler(resumeSignal, () => {
    paused = false;
    wake = true;
  });
  setHandler(stopSignal, (request) => {
    stopReason = request?.reason ?? 'stop signal';
    wake = true;
  });
  setHandler(
    configureUpdate,
    (patch) => {
      settings = { ...settings, ...patch };
      wake = true;
      return settings;
    },
    {
      validator: (patch) => {
        const checked = autoscalerSettingsPatchSchema.safeParse(patch);
        if (!checked.success) throw new Error(`invalid settings: ${describeZodIssue(checked.error)}`);
      },
    },
  );
  setHandler(statusQuery, () => ({
    paused,
    stopping: stopReason !== null,
    settings,
    groups: input.groups ?? null,
    ticks: carry.ticks,
    runs: carry.runs,
    nodeHoursUsed: carry.nodeHoursUsed,
    lastTick,
    events: carry.events,
  }));

  /**
   * Between ticks the observe activity waits for backlog to appear on a group that had none
   * (it polls Temporal and Ray), so new demand starts a tick within a poll instead of at the
   * next timer. Histories from before this change slept on a timer only, and replay that way.
   */
  const observeWaitsForBacklog = patched('observe-waits-for-backlog');
  /** Backlog per group as last observed: which groups had none. */
  const backlogSeen: Record<string, number> = {};
  let observeWaitMs = 0;

  async function tick(): Promise<void> {
    carry.ticks += 1;
    const record: TickRecord = {
      tick: carry.ticks,
      atMs: Date.now(),
      decision: [],
      applied: null,
      notes: {},
      error: null,
    };
    try {
      await runTick(record);
    } finally {
      // Only finished ticks are shown: a query during a tick sees the one before.
      lastTick = record;
    }
  }

  async function runTick(record: TickRecord): Promise<void> {
    let observation: ClusterObservation;
    try {
      observation = await observeCluster(
        observeWaitsForBacklog
          ? { groups: input.groups ?? null, waitForBacklogMs: observeWaitMs, backlogSeen: { ...backlogSeen } }
          : { groups: input.groups ?? null },
      );
    } catch (err) {
      if (failureType(err) === 'UnknownNodeGroup' || failureType(err) === 'InvalidAutoscalerInput') throw err;
      record.error = `observe failed: ${failureMessage(err)}`;
      log.warn('autoscaler tick: observe failed', { error: record.error });
      return;
    }
    for (const [group, observed] of Object.entries(observation.observations))
      backlogSeen[group] = observed.backlogCount;
    // A pause or stop that came while the observation waited holds this tick's decision too.
    if (observeWaitsForBacklog && (paused || stopReason !== null)) return;
    record.atMs = observation.nowMs;
    record.notes = observation.notes;
    accrueUsage(observation);

    const policyInput = policyInputSchema.safeParse({
      nowMs: observation.nowMs,
      groups: observation.groups,
      observations: observation.observations,
      settings: {
        idleTimeoutMs: settings.idleTimeoutMs,
        maxScaleUpStep: settings.maxScaleUpStep,
        cooldownMs: settings.cooldownMs,
        anticipationSeconds: settings.anticipationSeconds,
        ...(settings.budget && {
          budget: {
            nodeHours: settings.budget.nodeHours,
            nodeHoursUsed: carry.nodeHoursUsed,
            lookaheadMs: settings.budget.lookaheadMs ?? Math.max(1_000, settings.idleTimeoutMs),
          },
        }),
      },
      state: carry.policyState,
    });
    if (!policyInput.success) {
      record.error = `observation does not fit the policy: ${describeZodIssue(policyInput.error)}`;
      log.error('autoscaler tick: bad observation', { error: record.error });
      return;
    }
    const decision = decide(policyInput.data);
    carry.policyState = decision.state;
    record.decision = decision.groups;

    try {
      const applied = await applyScaling({ decisions: decision.groups });
      record.applied = applied.groups;
      for (const g of applied.groups) {
        if (g.added > 0)
          pushEvent({ atMs: observation.nowMs, group: g.group, direction: 'up', count: g.added, nodes: [] });
        if (g.removed.length > 0)
          pushEvent({
            atMs: observation.nowMs,
            group: g.group,
            direction: 'down',
            count: g.removed.length,
            nodes: g.removed,
          });
      }
    } catch (err) {
      record.error = `apply failed: ${failureMessage(err)}`;
      log.warn('autoscaler tick: apply failed', { error: record.error });
    }
  }

  /** Node-hours accrue from the previous observation, at the node count it saw. */
  function accrueUsage(observation: ClusterObservation): void {
    const periodMs =
      settings.budget?.periodHours !== undefined ? settings.budget.periodHours * MS_PER_HOUR : null;
    carry.budgetPeriodStartMs ??= observation.nowMs;
    if (periodMs !== null && observation.nowMs - carry.budgetPeriodStartMs >= periodMs) {
      const periods = Math.floor((observation.nowMs - carry.budgetPeriodStartMs) / periodMs);
      carry.budgetPeriodStartMs += periods * periodMs;
      carry.nodeHoursUsed = 0;
    } else if (carry.lastObservedAtMs !== null && observation.nowMs > carry.lastObservedAtMs) {
      carry.nodeHoursUsed +=
        (carry.lastBillableNodes * (observation.nowMs - carry.lastObservedAtMs)) / MS_PER_HOUR;
    }
    carry.lastObservedAtMs = observation.nowMs;
    carry.lastBillableNodes = Object.values(observation.billableNodes).reduce((sum, n) => sum + n, 0);
  }

  function pushEvent(event: ScaleEvent): void {
    carry.events.push(event);
    if (carry.events.length > SCALE_EVENTS_KEPT)
      carry.events.splice(0, carry.events.length - SCALE_EVENTS_KEPT);
  }

  let ticksThisRun = 0;
  while (stopReason === null) {
    if (paused) {
      setCurrentDetails(renderDetails({ paused, settings, carry, lastTick }));
      await condition(() => !paused || stopReason !== null);
      observeWaitMs = 0;
      continue;
    }
    wake = false;
    await tick();
    ticksThisRun += 1;
    setCurrentDetails(renderDetails({ paused, settings, carry, lastTick }));
    if (stopReason !== null) break;
    if (workflowInfo().continueAsNewSuggested || ticksThisRun >= input.maxTicksPerRun) {
      await condition(allHandlersFinished);
      return continueAsNew<typeof autoscaler>({
        ...(input.groups && { groups: input.groups }),
        ...settings,
        paused,
        maxTicksPerRun: input.maxTicksPerRun,
        carry: { ...carry, runs: carry.runs + 1 },
      });
    }
    // A signal or an update during the tick (or the timer) starts the next one at once; one
    // during the observe activity's wait takes effect when that wait ends.
    if (observeWaitsForBacklog) {
      const waitInObserve = Math.min(settings.tickIntervalMs, MAX_OBSERVE_WAIT_MS);
      const timerMs = settings.tickIntervalMs - waitInObserve;
      if (!wake && timerMs > 0) await condition(() => wake, timerMs);
      observeWaitMs = wake ? 0 : waitInObserve;
    } else await condition(() => wake, settings.tickIntervalMs);
  }

  await condition(allHandlersFinished);
  setCurrentDetails(`**stopped**: ${stopReason}\n\n${renderDetails({ paused, settings, carry, lastTick })}`);
  return {
    stoppedBecause: stopReason,
    ticks: carry.ticks,
    runs: carry.runs,
    nodeHoursUsed: carry.nodeHoursUsed,
    events: carry.events,
  };
}

function failureType(err: unknown): string | undefined {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  return cause instanceof ApplicationFailure ? (cause.type ?? undefined) : undefined;
}

function failureMessage(err: unknown): string {
  const cause = err instanceof ActivityFailure && err.cause ? err.cause : err;
  return cause instanceof Error ? cause.message : String(cause);
}

/** The Web UI's current details: the settings and the last tick, as markdown. */
function renderDetails(state: {
  paused: boolean;
  settings: AutoscalerSettings;
  carry: AutoscalerCarry;
  lastTick: TickRecord | null;
}): string {
  const { settings, carry, lastTick } = state;
  const lines = [
    `**${state.paused ? 'paused' : 'running'}** · tick ${carry.ticks} · every ${settings.tickIntervalMs} ms · idle timeout ${settings.idleTimeoutMs} ms · cooldown ${settings.cooldownMs} ms · max step ${settings.maxScaleUpStep}`,
  ];
  if (settings.budget)
    lines.push(`budget: ${carry.nodeHoursUsed.toFixed(3)} of ${settings.budget.nodeHours} node-hours used`);
  if (lastTick) {
    lines.push('', `last tick at ${new Date(lastTick.atMs).toISOString()}`);
    if (lastTick.error) lines.push(`error: ${lastTick.error}`);
    if (lastTick.decision.length > 0) {
      lines.push('', '| group | current | desired | add | remove | result |', '|---|---|---|---|---|---|');
      for (const d of lastTick.decision) {
        const a = lastTick.applied?.find((g) => g.group === d.group);
        const result = !a
          ? '—'
          : a.error
            ? `error: ${a.error}`
            : [
                a.added > 0 ? `+${a.added}` : '',
                a.removed.length > 0 ? `−${a.removed.length}` : '',
                a.refused.length > 0 ? `refused ${a.refused.map((r) => r.nodeId).join(', ')}` : '',
              ]
                .filter(Boolean)
                .join(' ') || 'no change';
        lines.push(
          `| ${d.group} | ${d.current} | ${d.desired} | ${d.add} | ${d.remove.length} | ${result} |`,
        );
      }
      for (const d of lastTick.decision)
        if (d.reasons.length > 0) lines.push(`- **${d.group}**: ${d.reasons.join('; ')}`);
    }
    for (const [group, notes] of Object.entries(lastTick.notes))
      lines.push(`- _${group}_: ${notes.join('; ')}`);
  }
  const recent = carry.events.slice(-5);
  if (recent.length > 0)
    lines.push(
      '',
      `recent scale events: ${recent.map((e) => `${new Date(e.atMs).toISOString()} ${e.group} ${e.direction === 'up' ? '+' : '−'}${e.count}`).join(', ')}`,
    );
  return lines.join('\n');
}
