/**
 * What every step attempt does around its Ray work, whatever runs it (a task
 * through the dispatcher, a job through the Jobs API): it keeps Temporal's
 * heartbeat going while it submits, it stops its Ray work just before
 * Temporal would time the attempt out (so the next attempt starts afresh
 * rather than racing a leftover), and on Temporal's cancellation it stops the
 * Ray work only when the step itself is cancelled or its workflow is over. A
 * worker shutdown, an attempt timeout or a stale attempt ends the attempt
 * alone: the Ray work goes on for the next attempt to attach to.
 */
import { ApplicationFailure, CancelledFailure, type Context } from '@temporalio/activity';
import type { Logger } from 'pino';
import { assumeWorkflowOpen, type WorkflowClosedCheck } from './workflow-liveness';

/** How long before Temporal's start-to-close timeout the attempt stops its Ray work itself. */
export const ATTEMPT_DEADLINE_MARGIN_MS = 1_000;

export interface AttemptSupervisorConfig {
  /** How often heartbeats are sent while the attempt waits. */
  statusPollMs: number;
  /** Asked when a heartbeat comes back "not found": only a closed workflow's step stops its Ray work. */
  workflowClosed?: WorkflowClosedCheck;
}

/** How the attempt's Ray work is stopped, and what a timed-out attempt fails with. */
export interface RayWork {
  /** "Ray task", "Ray job": how logs and errors name it. */
  noun: string;
  /** Stops the work and returns once it has stopped. */
  stop(): Promise<void>;
  /** The failure type of an attempt that ran out of time (retryable: the next attempt starts afresh). */
  timeoutType: string;
}

export class AttemptSupervisor {
  readonly workflowId: string;
  readonly runId: string;
  readonly attempt: number;

  constructor(
    private readonly ctx: Context,
    private readonly config: AttemptSupervisorConfig,
    private readonly log: Logger,
  ) {
    const { workflowExecution, attempt } = ctx.info;
    if (!workflowExecution)
      throw ApplicationFailure.nonRetryable('a pipeline step runs inside a workflow', 'NoWorkflow');
    this.workflowId = workflowExecution.workflowId;
    this.runId = workflowExecution.runId;
    this.attempt = attempt;
  }

  /**
   * Runs `work` (a submission: it can take seconds, a bridge that restarts, a busy cluster) while
   * re-sending `details()` as the heartbeat every poll interval, so the heartbeat timeout does not
   * end an attempt that is making progress. Not at once, though: a heartbeat is a write on the
   * server, and most steps are over before the first interval.
   */
  async keepAlive<T>(details: () => unknown, work: () => Promise<T>): Promise<T> {
    const timer = setInterval(() => this.ctx.heartbeat(details()), this.config.statusPollMs);
    try {
      return await work();
    } finally {
      clearInterval(timer);
    }
  }

  /**
   * Waits for `outcome`, racing the attempt's deadline and Temporal's cancellation. At the deadline
   * the work is stopped and the attempt fails (retryably); on a cancellation the work is stopped
   * only if the step was cancelled or its workflow is over, and the cancellation is rethrown.
   */
  async watch<T>(outcome: Promise<T>, work: RayWork): Promise<T> {
    let deadlineTimer: NodeJS.Timeout | undefined;
    const timeoutMs = this.ctx.info.startToCloseTimeoutMs ?? 0;
    const deadline = new Promise<never>((_, reject) => {
      const ms = timeoutMs - ATTEMPT_DEADLINE_MARGIN_MS;
      if (ms > 0) deadlineTimer = setTimeout(() => reject(new AttemptDeadline()), ms);
    });
    try {
      return await Promise.race([outcome, this.ctx.cancelled, deadline]);
    } catch (err) {
      if (err instanceof AttemptDeadline) {
        this.log.warn(`step timed out; stopping its ${work.noun}`);
        await work.stop();
        throw ApplicationFailure.retryable(
          `the step's ${work.noun} did not finish within its timeout (${Math.round(timeoutMs / 1000)} s)`,
          work.timeoutType,
        );
      }
      if (err instanceof CancelledFailure) {
        const why = this.ctx.cancellationDetails;
        const closed = () => (this.config.workflowClosed ?? assumeWorkflowOpen)(this.workflowId, this.runId);
        if (why?.cancelRequested || (why?.notFound && (await closed()))) {
          this.log.info({ reason: err.message }, `step cancelled; stopping its ${work.noun}`);
          await work.stop();
        } else
          this.log.info(
            { reason: err.message },
            `attempt ended; its ${work.noun} keeps running for the next one`,
          );
      }
      throw err;
    } finally {
      clearTimeout(deadlineTimer);
    }
  }
}

class AttemptDeadline extends Error {}
