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
import { describeZodError } from '../../core/issues';
import {
  ApplicationFailure,
  ActivityFailure,
  allHandlersFinished,
  condition,
  continueAsNew,
  log,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import type { AutoscalerActivities } from '../../activities/scaling/activities';
import { decide } from '../../core/autoscaling/policy';
import { policyInputSchema } from '../../core/autoscaling/policy-types';
import {
  configureUpdate,
  pauseSignal,
  resumeSignal,
  statusQuery,
  stopSignal,
  type AutoscalerStatus,
  type AutoscalerSummary,
  type ClusterObservation,
  type TickRecord,
} from '../../core/messages/autoscaler';
import {
  autoscalerCarrySchema,
  autoscalerInputSchema,
  autoscalerSettingsPatchSchema,
  MAX_OBSERVE_WAIT_MS,
  SCALE_EVENTS_KEPT,
  type AutoscalerCarry,
  type AutoscalerInput,
  type AutoscalerSettings,
  type AutoscalerSettingsPatch,
  type ScaleEvent,
} from '../../core/schemas/autoscaler';

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
      message: `invalid autoscaler input: ${describeZodError(parsed.error)}`,
      nonRetryable: true,
    });
  }
  const loop = new AutoscalerLoop(parsed.data);

  // Every message the autoscaler answers (core/messages/autoscaler.ts), in one place.
  setHandler(pauseSignal, () => loop.pause());
  setHandler(resumeSignal, () => loop.resume());
  setHandler(stopSignal, (request) => loop.stop(request?.reason));
  setHandler(configureUpdate, (patch) => loop.configure(patch), {
    validator: (patch) => AutoscalerLoop.validateSettings(patch),
  });
  setHandler(statusQuery, () => loop.status());

  /**
   * Between ticks the observe activity waits for backlog to appear on a group that had none
   * (it polls Temporal and Ray), so new demand starts a tick within a poll instead of at the
   * next timer. Histories from before this change slept on a timer only, and replay that way.
   */
  return loop.run(patched('observe-waits-for-backlog'));
}

/** The autoscaler's state and its loop: observe → decide (pure, here) → apply, tick after tick. */
class AutoscalerLoop {
  private settings: AutoscalerSettings;
  private readonly carry: AutoscalerCarry;
  private paused: boolean;
  private stopReason: string | null = null;
  /** Set by every message: the wait between ticks ends early. */
  private wake = false;
  private lastTick: TickRecord | null = null;
  /** Backlog per group as last observed: which groups had none. */
  private readonly backlogSeen: Record<string, number> = {};
  private observeWaitMs = 0;
  private observeWaitsForBacklog = false;

  constructor(private readonly input: AutoscalerInput) {
    this.settings = {
      tickIntervalMs: input.tickIntervalMs,
      idleTimeoutMs: input.idleTimeoutMs,
      cooldownMs: input.cooldownMs,
      maxScaleUpStep: input.maxScaleUpStep,
      anticipationSeconds: input.anticipationSeconds,
      budget: input.budget,
    };
    this.carry = autoscalerCarrySchema.parse(input.carry ?? {});
    this.paused = input.paused;
  }

  pause(): void {
    this.paused = true;
    this.wake = true;
  }

  resume(): void {
    this.paused = false;
    this.wake = true;
  }

  stop(reason: string | undefined): void {
    this.stopReason = reason ?? 'stop signal';
    this.wake = true;
  }

  static validateSettings(patch: AutoscalerSettingsPatch): void {
    const checked = autoscalerSettingsPatchSchema.safeParse(patch);
    if (!checked.success) throw new Error(`invalid settings: ${describeZodError(checked.error)}`);
  }

  configure(patch: AutoscalerSettingsPatch): AutoscalerSettings {
    this.settings = { ...this.settings, ...patch };
    this.wake = true;
    return this.settings;
  }

  status(): AutoscalerStatus {
    return {
      paused: this.paused,
      stopping: this.stopReason !== null,
      settings: this.settings,
      groups: this.input.groups ?? null,
      ticks: this.carry.ticks,
      runs: this.carry.runs,
      nodeHoursUsed: this.carry.nodeHoursUsed,
      lastTick: this.lastTick,
      events: this.carry.events,
    };
  }

  async run(observeWaitsForBacklog: boolean): Promise<AutoscalerSummary> {
    this.observeWaitsForBacklog = observeWaitsForBacklog;
    let ticksThisRun = 0;
    while (this.stopReason === null) {
      if (this.paused) {
        this.showDetails();
        await condition(() => !this.paused || this.stopReason !== null);
        this.observeWaitMs = 0;
        continue;
      }
      this.wake = false;
      await this.tick();
      ticksThisRun += 1;
      this.showDetails();
      if (this.stopReason !== null) break;
      if (workflowInfo().continueAsNewSuggested || ticksThisRun >= this.input.maxTicksPerRun) {
        await condition(allHandlersFinished);
        return continueAsNew<typeof autoscaler>({
          ...(this.input.groups && { groups: this.input.groups }),
          ...this.settings,
          paused: this.paused,
          maxTicksPerRun: this.input.maxTicksPerRun,
          carry: { ...this.carry, runs: this.carry.runs + 1 },
        });
      }
      // A signal or an update during the tick (or the timer) starts the next one at once; one
      // during the observe activity's wait takes effect when that wait ends.
      if (observeWaitsForBacklog) {
        const waitInObserve = Math.min(this.settings.tickIntervalMs, MAX_OBSERVE_WAIT_MS);
        const timerMs = this.settings.tickIntervalMs - waitInObserve;
        if (!this.wake && timerMs > 0) await condition(() => this.wake, timerMs);
        this.observeWaitMs = this.wake ? 0 : waitInObserve;
      } else await condition(() => this.wake, this.settings.tickIntervalMs);
    }

    const stoppedBecause: string = this.stopReason;
    await condition(allHandlersFinished);
    setCurrentDetails(`**stopped**: ${stoppedBecause}\n\n${this.details()}`);
    return {
      stoppedBecause,
      ticks: this.carry.ticks,
      runs: this.carry.runs,
      nodeHoursUsed: this.carry.nodeHoursUsed,
      events: this.carry.events,
    };
  }

  private async tick(): Promise<void> {
    this.carry.ticks += 1;
    const record: TickRecord = {
      tick: this.carry.ticks,
      atMs: Date.now(),
      decision: [],
      applied: null,
      notes: {},
      error: null,
    };
    try {
      await this.runTick(record);
    } finally {
      // Only finished ticks are shown: a query during a tick sees the one before.
      this.lastTick = record;
    }
  }

  private async runTick(record: TickRecord): Promise<void> {
    const { settings, carry } = this;
    let observation: ClusterObservation;
    try {
      observation = await observeCluster(
        this.observeWaitsForBacklog
          ? {
              groups: this.input.groups ?? null,
              waitForBacklogMs: this.observeWaitMs,
              backlogSeen: { ...this.backlogSeen },
            }
          : { groups: this.input.groups ?? null },
      );
    } catch (err) {
      if (failureType(err) === 'UnknownNodeGroup' || failureType(err) === 'InvalidAutoscalerInput') throw err;
      record.error = `observe failed: ${failureMessage(err)}`;
      log.warn('autoscaler tick: observe failed', { error: record.error });
      return;
    }
    for (const [group, observed] of Object.entries(observation.observations))
      this.backlogSeen[group] = observed.backlogCount;
    // A pause or stop that came while the observation waited holds this tick's decision too.
    if (this.observeWaitsForBacklog && (this.paused || this.stopReason !== null)) return;
    record.atMs = observation.nowMs;
    record.notes = observation.notes;
    this.accrueUsage(observation);

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
      record.error = `observation does not fit the policy: ${describeZodError(policyInput.error)}`;
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
          this.pushEvent({
            atMs: observation.nowMs,
            group: g.group,
            direction: 'up',
            count: g.added,
            nodes: [],
          });
        if (g.removed.length > 0)
          this.pushEvent({
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
  private accrueUsage(observation: ClusterObservation): void {
    const { settings, carry } = this;
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

  private pushEvent(event: ScaleEvent): void {
    this.carry.events.push(event);
    if (this.carry.events.length > SCALE_EVENTS_KEPT)
      this.carry.events.splice(0, this.carry.events.length - SCALE_EVENTS_KEPT);
  }

  private showDetails(): void {
    setCurrentDetails(this.details());
  }

  private details(): string {
    return renderDetails({
      paused: this.paused,
      settings: this.settings,
      carry: this.carry,
      lastTick: this.lastTick,
    });
  }
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
