/**
 * How one step runs, seen from the workflow: the activity options (its node
 * group's task queue, timeouts, retry policy, priority and fairness) and the
 * activity call itself. Workflow code: deterministic, no I/O.
 */
import { ApplicationFailure, proxyActivities, type ActivityOptions } from '@temporalio/workflow';
import type { RayTaskActivities } from '../activities';
import type { StepResult, StepSpec } from './schemas/pipeline-spec';
import { nodeGroupTaskQueue } from './task-queues';

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
export function failureOf(err: unknown): { type: string; message: string; attempts: number } {
  let cause: unknown = err;
  while (
    typeof cause === 'object' &&
    cause !== null &&
    'cause' in cause &&
    (cause as { cause?: unknown }).cause
  )
    cause = (cause as { cause: unknown }).cause;
  const failure = cause instanceof ApplicationFailure ? cause : undefined;
  const details = failure?.details?.[0] as { attempt?: number } | undefined;
  return {
    type: failure?.type ?? (cause instanceof Error ? cause.name : 'Error'),
    message: cause instanceof Error ? cause.message : String(cause),
    attempts: details?.attempt ?? 0,
  };
}

/**
 * Runs a step whose inputs are already resolved; resolves to its succeeded
 * result, or throws the activity's failure.
 */
export async function executeStep(
  step: StepSpec,
  inputs: { args: unknown[]; kwargs: Record<string, unknown> },
  placement: { group: string; priority: StepPriority },
): Promise<StepResult> {
  const { runRayTask } = proxyActivities<RayTaskActivities>(
    stepActivityOptions(step, placement.group, placement.priority),
  );
  if (step.task === undefined)
    throw ApplicationFailure.nonRetryable(`step "${step.id}" names no task`, 'InvalidPipelineSpec');
  const out = await runRayTask({ stepId: step.id, task: step.task, ...inputs, resources: step.resources });
  return {
    status: 'succeeded',
    output: out.output,
    attempts: out.attempt,
    node: out.node ?? undefined,
    nodes: out.nodes,
    queuedMs: out.queuedMs,
    runningMs: out.runningMs,
  };
}
