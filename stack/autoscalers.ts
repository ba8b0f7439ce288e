/**
 * Autoscaler workflows left running on a local stack. The dev server keeps
 * workflows in its file, so an autoscaler left by `npm start` on a shared
 * stack, or by a run that was killed, wakes up with the next worker that polls
 * the `pantheon` queue and resizes the node groups that worker serves. A test
 * run or a benchmark that measures those groups ends every such loop first.
 */
import type { Client } from '@temporalio/client';

/** Terminates every running `autoscaler` workflow; returns their workflow ids. */
export async function endRunningAutoscalers(client: Client, reason: string): Promise<string[]> {
  const ended: string[] = [];
  for await (const wf of client.workflow.list({
    query: `WorkflowType = 'autoscaler' AND ExecutionStatus = 'Running'`,
  })) {
    await client.workflow
      .getHandle(wf.workflowId, wf.runId)
      .terminate(reason)
      .then(() => ended.push(wf.workflowId))
      .catch(() => undefined); // ended meanwhile
  }
  return ended;
}
