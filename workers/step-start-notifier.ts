/**
 * Tells a pipeline when one of its step attempts starts on a node-group worker.
 *
 * A workflow learns of an activity only when it ends; the moment an attempt
 * leaves Temporal's task queue is otherwise invisible to it. This activity
 * interceptor signals `stepAttemptStarted` with the attempt's start time, so
 * the pipeline's progress shows queued versus running live, and queue waits
 * (the measure of priority and fairness) are recorded in its history.
 *
 * Best effort and off the step's path: the step never waits for the signal,
 * and a lost signal only leaves the start time to be estimated at the end.
 */
import type { Client } from '@temporalio/client';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import type { Logger } from 'pino';
import { stepAttemptStartedSignal } from '../workflows/pipeline-messages';

/** Step activities carry ids of this shape (stepActivityId); other activities are left alone. */
const STEP_ACTIVITY_ID = /^step:/;

export function stepStartNotifier(client: Client, logger: Logger): ActivityInterceptorsFactory {
  return (ctx) => ({
    inbound: {
      async execute(input, next) {
        const { activityId, attempt, workflowExecution, scheduledTimestampMs } = ctx.info;
        if (workflowExecution && STEP_ACTIVITY_ID.test(activityId)) {
          client.workflow
            .getHandle(workflowExecution.workflowId, workflowExecution.runId)
            .signal(stepAttemptStartedSignal, {
              activityId,
              attempt,
              scheduledAtMs: Math.round(scheduledTimestampMs),
              startedAtMs: Date.now(),
            })
            .catch((err: unknown) =>
              logger.debug(
                { err, workflowId: workflowExecution.workflowId, activityId },
                'start signal not delivered',
              ),
            );
        }
        return next(input);
      },
    },
  });
}
