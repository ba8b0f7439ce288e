/**
 * The records of a pipeline's steps: each step's status, attempts, node,
 * timings and output, and the transitions between them (declared → queued →
 * running → succeeded, failed, cancelled or skipped). What `progress` shows,
 * what the result returns and what the usage report is built from.
 * Workflow code: deterministic.
 */
import { isCancellation } from '@temporalio/workflow';
import type { Allocation } from '../../core/agent-allocation';
import { stepAttemptStartedSchema } from '../../core/messages/pipeline';
import { FINAL_STEP_STATUSES, type StepResult, type StepStatus } from '../../core/schemas/pipeline-spec';
import { failureOf } from './step-execution';

export class StepRecords {
  /** Keyed by step id, with no prototype: a step called `constructor` is just a step. */
  readonly results: Record<string, StepResult> = Object.create(null);
  /** Step ids in the order they became known. */
  readonly order: string[] = [];
  /** Bumped on every change of step state: loops wait on it instead of polling. */
  version = 0;
  /** The time each finished step waited inside Ray, for the usage report. */
  readonly rayQueueMs: Record<string, number> = Object.create(null);
  /** Which step an activity (`step:<id>`, `step:<id>~<fallback>`) belongs to. */
  readonly stepOfActivity = new Map<string, string>();
  /** Step activities scheduled and not yet over: what a priority change re-prioritizes. */
  readonly inFlight = new Set<string>();
  /**
   * How many steps are in each status, kept as statuses change: what a scheduler of tens of
   * thousands of steps asks on every wake-up (any failed? all final?) without a pass over them.
   */
  private readonly counts = new Map<StepStatus, number>();

  /** `changed` is told after every change (the run renders its details from it). */
  constructor(private readonly changed: () => void) {}

  /** Something about the steps changed: waiting loops wake, the details are rendered again. */
  touch(): void {
    this.version++;
    this.changed();
  }

  statusOf(stepId: string): StepStatus | undefined {
    return this.results[stepId]?.status;
  }

  /** How many steps are `status` now. */
  countOf(status: StepStatus): number {
    return this.counts.get(status) ?? 0;
  }

  /** Sets a step's status, keeping the counts. */
  private move(result: StepResult, status: StepStatus): void {
    this.counts.set(result.status, this.countOf(result.status) - 1);
    result.status = status;
    this.counts.set(status, this.countOf(status) + 1);
  }

  /** Makes a step known (pending) so progress shows it before it runs. */
  declare(stepId: string, agent?: string): StepResult {
    let result = this.results[stepId];
    if (!result) {
      result = { status: 'pending', attempts: 0, ...(agent !== undefined && { agent }) };
      this.counts.set('pending', this.countOf('pending') + 1);
      this.results[stepId] = result;
      this.order.push(stepId);
      this.touch();
    }
    return result;
  }

  /** A step a run before this one finished (a continued pipeline): its carried record, as it was. */
  restore(stepId: string, result: StepResult): void {
    const record = this.declare(stepId);
    const { status, ...rest } = result;
    this.move(record, status);
    Object.assign(record, rest);
    this.touch();
  }

  setStatus(stepId: string, status: StepStatus): void {
    const result = this.declare(stepId);
    this.move(result, status);
    if (FINAL_STEP_STATUSES.has(status)) result.finishedAtMs ??= Date.now();
    this.touch();
  }

  get allFinal(): boolean {
    let final = 0;
    for (const status of FINAL_STEP_STATUSES) final += this.countOf(status);
    return final === this.order.length;
  }

  markQueued(stepId: string, activityId: string, allocation: Allocation, agent?: string): void {
    const result = this.declare(stepId);
    this.move(result, 'queued');
    result.scheduledAtMs ??= Date.now();
    result.resources = allocation.resources;
    result.allocation = allocation.allocation;
    if (agent !== undefined) result.agent = agent;
    this.stepOfActivity.set(activityId, stepId);
    this.inFlight.add(activityId);
    this.touch();
  }

  /** The `stepAttemptStarted` signal: the node-group worker saw an attempt of a step start. */
  onAttemptStarted(raw: unknown): void {
    const parsed = stepAttemptStartedSchema.safeParse(raw);
    if (!parsed.success) return;
    const { activityId, attempt, scheduledAtMs, startedAtMs } = parsed.data;
    const stepId = this.stepOfActivity.get(activityId);
    const result = stepId === undefined ? undefined : this.results[stepId];
    if (!result) return;
    // The server's scheduling time is exact, and the same on every replay (workflow time read right after a
    // local activity is not); only the first activity of a step counts, a fallback waits on its own.
    if (scheduledAtMs !== undefined && attempt === 1 && result.startedAtMs === undefined)
      result.scheduledAtMs = scheduledAtMs;
    result.startedAtMs = Math.min(result.startedAtMs ?? startedAtMs, startedAtMs);
    result.attempts = Math.max(result.attempts, attempt);
    if (result.status === 'queued') this.move(result, 'running');
    this.touch();
  }

  /** `out` is what executeStep returned: every field it reports is kept (memory after OOM retries, tries, job logs). */
  succeed(stepId: string, activityId: string, out: StepResult): StepResult {
    const result = this.declare(stepId);
    this.inFlight.delete(activityId);
    const finishedAtMs = Date.now();
    const rayQueueMs = out.queuedMs ?? 0;
    const runningMs = out.runningMs ?? 0;
    const { status: _status, queuedMs: _rayQueued, startedAtMs, scheduledAtMs, ...reported } = out;
    // A step over before its start signal was due reports its own start; a first attempt also the
    // server's scheduling time. Without either (the signal lost), the start is estimated from Ray's timings.
    if (result.startedAtMs === undefined && startedAtMs !== undefined) {
      if (scheduledAtMs !== undefined) result.scheduledAtMs = scheduledAtMs;
      result.startedAtMs = startedAtMs;
    }
    result.startedAtMs ??= Math.max(
      result.scheduledAtMs ?? finishedAtMs,
      finishedAtMs - rayQueueMs - runningMs,
    );
    const temporalQueueMs = Math.max(0, result.startedAtMs - (result.scheduledAtMs ?? result.startedAtMs));
    this.rayQueueMs[stepId] = rayQueueMs;
    this.move(result, 'succeeded');
    Object.assign(result, reported, {
      output: out.output,
      attempts: Math.max(result.attempts, out.attempts),
      node: out.node,
      nodes: out.nodes,
      queuedMs: temporalQueueMs + rayQueueMs,
      runningMs,
      finishedAtMs,
    } satisfies Partial<StepResult>);
    this.touch();
    return result;
  }

  failOrCancel(stepId: string, activityId: string, err: unknown): StepResult {
    const result = this.declare(stepId);
    this.inFlight.delete(activityId);
    const cancelled = isCancellation(err);
    const failure = failureOf(err);
    this.move(result, cancelled ? 'cancelled' : 'failed');
    result.attempts = Math.max(result.attempts, failure.attempts);
    result.error = cancelled
      ? { type: 'Cancelled', message: result.error?.message ?? 'the step was cancelled' }
      : { type: failure.type, message: failure.message };
    if (failure.items) result.items = failure.items;
    result.finishedAtMs = Date.now();
    if (result.scheduledAtMs !== undefined && result.startedAtMs !== undefined)
      result.queuedMs = Math.max(0, result.startedAtMs - result.scheduledAtMs);
    this.touch();
    return result;
  }
}
