/**
 * How the integration tests read a workflow that failed: its result is a
 * WorkflowFailedError, and what they check is its cause (the
 * ApplicationFailure the workflow closed with: type, message, non-retryable).
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { PipelineResult } from '../../core/schemas/pipeline-spec';

export interface FailureCause {
  message?: string;
  type?: string;
  nonRetryable?: boolean;
  details?: unknown[];
}

/** Waits for the workflow to close, expects it to have failed, and returns the failure's cause. */
export async function failureCause(handle: WorkflowHandle): Promise<FailureCause> {
  const err = await handle.result().catch((e: unknown) => e);
  expect(err).toBeInstanceOf(WorkflowFailedError);
  return (err as WorkflowFailedError).cause as FailureCause;
}

/** Waits for a pipeline whose step failed (PipelineStepFailed) and returns the result its failure carries. */
export async function failedPipelineResult(handle: WorkflowHandle): Promise<PipelineResult> {
  const cause = await failureCause(handle);
  expect(cause.type).toBe('PipelineStepFailed');
  return cause.details?.[0] as PipelineResult;
}
