/**
 * Tells a pipeline when one of its step attempts starts on a node-group worker.
 *
 * A workflow learns of an activity only when it ends; the moment an attempt
 * leaves Temporal's task queue is otherwise invisible to it. This activity
 * interceptor signals `stepAttemptStarted` with the attempt's start time, so
 * the pipeline's progress shows queued versus running live, and queue waits
 * (the measure of priority and fairness) are recorded in its history.
 *
 * Only for attempts still running after `delayMs`: a signal costs the pipeline
 * a workflow task, and one that lands while a short step finishes holds up its
 * result. A step over by then reports its own start time in its result
 * (runRayTask's `startedAtMs`). Retries are signalled at once: a later
 * attempt's result cannot tell when the first one started.
 *
 * Best effort and off the step's path: the step never waits for the signal,
 * and a lost signal only leaves the start time to be estimated at the end.
 */
import type { Client } from '@temporalio/client';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { Logger } from 'pino';
import { stepAttemptStartedSignal } from '../core/messages/pipeline';

/** Step activities carry ids of this shape (stepActivityId); other activities are left alone. */
const STEP_ACTIVITY_ID = /^step:/;

export function stepStartNotifier(
  client: Client,
  logger: Logger,
  delayMs: number,
): ActivityInterceptorsFactory {
  return (ctx) => ({
    inbound: {
      async execute(input, next) {
        const { activityId, attempt, workflowExecution, scheduledTimestampMs } = ctx.info;
        if (!workflowExecution || !STEP_ACTIVITY_ID.test(activityId)) return next(input);
        const started = {
          activityId,
          attempt,
          scheduledAtMs: Math.round(scheduledTimestampMs),
          startedAtMs: Date.now(),
        };
        const notify = () =>
          client.workflow
            .getHandle(workflowExecution.workflowId, workflowExecution.runId)
            .signal(stepAttemptStartedSignal, started)
            .catch((err: unknown) =>
              logger.debug(
                { err, workflowId: workflowExecution.workflowId, activityId },
                'start signal not delivered',
              ),
            );
        const timer = setTimeout(notify, attempt > 1 ? 0 : delayMs);
        try {
          return await next(input);
        } finally {
          clearTimeout(timer);
        }
      },
    },
  });
}
