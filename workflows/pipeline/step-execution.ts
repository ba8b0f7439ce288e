/**
 * How one step runs, seen from the workflow: the activity options (its node
 * group's task queue, timeouts, retry policy, priority and fairness) and the
 * activity call itself. Workflow code: deterministic, no I/O.
 */
import {
  ActivityCancellationType,
  ApplicationFailure,
  proxyActivities,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { RayJobActivities, RayTaskActivities } from '../../activities';
import { pinToGroup } from '../../core/placement';
import type { StepMapItems, StepResult, StepSpec } from '../../core/schemas/pipeline-spec';
import type { MapItems } from '../../core/schemas/map-step';
import type { StepInputs } from './agent-memory';
import { nodeGroupTaskQueue } from '../../core/task-queues';

/** Heartbeats carry the Ray task state and are how cancellation reaches a step. */
export const STEP_HEARTBEAT_TIMEOUT = '5s';
export const DEFAULT_STEP_TIMEOUT_SECONDS = 3600;
export const DEFAULT_RETRY = {
  initialIntervalMs: 1000,
  backoffCoefficient: 2,
  maximumIntervalMs: 30_000,
  maximumAttempts: 5,
};

export interface StepPriority {
  priorityKey: number;
  fairnessKey: string;
  fairnessWeight?: number;
}

export function stepActivityOptions(step: StepSpec, group: string, priority: StepPriority): ActivityOptions {
  const retry = { ...DEFAULT_RETRY, ...step.retry };
  return {
    taskQueue: nodeGroupTaskQueue(group),
    startToCloseTimeout: `${step.timeoutSeconds ?? DEFAULT_STEP_TIMEOUT_SECONDS}s`,
    heartbeatTimeout: STEP_HEARTBEAT_TIMEOUT,
    // A cancelled step is over only once its Ray task or job is stopped, not when the cancel is sent.
    cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
    retry: {
      initialInterval: retry.initialIntervalMs,
      backoffCoefficient: retry.backoffCoefficient,
      maximumInterval: retry.maximumIntervalMs,
      maximumAttempts: retry.maximumAttempts,
      nonRetryableErrorTypes: [...(retry.nonRetryableErrorTypes ?? []), ...(step.nonRetryableErrors ?? [])],
    },
    priority,
    summary: `${step.id}: ${step.task ?? step.agent ?? 'job'}`,
  };
}

/** The innermost failure of an activity error, with the attempt count the activity reported. */
export function failureOf(err: unknown): {
  type: string;
  message: string;
  attempts: number;
  /** A map step's items, with the indices of those that failed for good. */
  items?: StepMapItems;
} {
  let cause: unknown = err;
  while (
    typeof cause === 'object' &&
    cause !== null &&
    'cause' in cause &&
    (cause as { cause?: unknown }).cause
  )
    cause = (cause as { cause: unknown }).cause;
  const failure = cause instanceof ApplicationFailure ? cause : undefined;
  const details = failure?.details?.[0] as
    { attempt?: number; items?: MapItems; failedItems?: Array<{ index: number }> } | undefined;
  return {
    type: failure?.type ?? (cause instanceof Error ? cause.name : 'Error'),
    message: cause instanceof Error ? cause.message : String(cause),
    attempts: details?.attempt ?? 0,
    ...(details?.items && {
      items: { ...details.items, failedIndices: (details.failedItems ?? []).map((item) => item.index) },
    }),
  };
}

export interface StepPlacement {
  group: string;
  priority: StepPriority;
  /** A stable activity id, so the pipeline can find the activity again (priority changes, start signals). */
  activityId?: string;
  /** Replaces the default activity summary (`<step>: <task>`) shown in the Web UI. */
  summary?: string;
}

/**
 * Runs a step whose inputs are already resolved; resolves to its succeeded
 * result, or throws the activity's failure.
 */
export async function executeStep(
  step: StepSpec,
  inputs: StepInputs,
  placement: StepPlacement,
): Promise<StepResult> {
  const { runRayTask, runRayJob } = proxyActivities<RayTaskActivities & RayJobActivities>({
    ...stepActivityOptions(step, placement.group, placement.priority),
    ...(placement.activityId !== undefined && { activityId: placement.activityId }),
    ...(placement.summary !== undefined && { summary: placement.summary }),
  });
  if (step.job !== undefined) {
    const job = await runRayJob({
      stepId: step.id,
      job: step.job,
      resources: pinToGroup(step.resources, placement.group),
    });
    return {
      status: 'succeeded',
      output: { submissionId: job.submissionId, exitCode: job.exitCode, logTail: job.logTail },
      attempts: job.attempt,
      node: job.node ?? undefined,
      nodes: job.node ? [job.node] : [],
      runningMs: job.runningMs,
      submissionId: job.submissionId,
      logTail: job.logTail,
    };
  }
  if (step.task === undefined)
    throw ApplicationFailure.nonRetryable(`step "${step.id}" names no task`, 'InvalidPipelineSpec');
  // Pinned to its group's nodes: the group's worker admitted it against exactly their capacity.
  const resources = pinToGroup(step.resources, placement.group);
  const out = await runRayTask({
    stepId: step.id,
    task: step.task,
    ...inputs,
    resources,
    group: placement.group,
  });
  return {
    status: 'succeeded',
    output: out.output,
    attempts: out.attempt,
    node: out.node ?? undefined,
    nodes: out.nodes,
    ...(out.items !== undefined && { items: out.items }),
    queuedMs: out.queuedMs,
    runningMs: out.runningMs,
    ...(out.memoryMb !== null && { memoryMb: out.memoryMb }),
    tries: out.tries,
    // Histories recorded before the activity reported these lack them.
    ...(out.startedAtMs !== undefined && { startedAtMs: out.startedAtMs }),
    ...(out.attempt === 1 && out.scheduledAtMs !== undefined && { scheduledAtMs: out.scheduledAtMs }),
  };
}
