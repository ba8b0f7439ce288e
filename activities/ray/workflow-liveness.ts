/**
 * Whether a step's workflow run is over, asked of Temporal.
 *
 * A step activity whose heartbeat comes back "not found" is either a stale
 * attempt (its worker stalled past the heartbeat timeout, and a newer attempt
 * has taken, or will take, the Ray work over) or the last attempt of a
 * workflow that has closed (cancelled, terminated, timed out). Only in the
 * second case may it stop the Ray work: stopping it in the first would make
 * the next attempt run the side effect again.
 */
import type { Client } from '@temporalio/client';

export type WorkflowClosedCheck = (workflowId: string, runId: string) => Promise<boolean>;

export function workflowClosedCheck(client: Client): WorkflowClosedCheck {
  return async (workflowId, runId) => {
    try {
      const described = await client.workflow.getHandle(workflowId, runId).describe();
      return described.status.name !== 'RUNNING';
    } catch (err) {
      // A run Temporal no longer knows (deleted by retention) is over too.
      if (err instanceof Error && err.name === 'WorkflowNotFoundError') return true;
      throw err;
    }
  };
}

/** Never says closed: for a worker without a client, so that "not found" never stops Ray work. */
export const assumeWorkflowOpen: WorkflowClosedCheck = async () => false;
