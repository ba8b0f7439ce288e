/**
 * Activities a pipeline uses to act on Temporal itself (the pipeline worker
 * registers them): change the priority of its step activities already waiting
 * in a task queue, and read and report agent performance.
 */
import { Client, WorkflowNotFoundError } from '@temporalio/client';
import type { Logger } from 'pino';
import { z } from 'zod';
import { type AgentRunObservation, agentRunObservationSchema } from '../core/agent-performance-stats';
import {
  AGENT_PERFORMANCE_WORKFLOW_TYPE,
  agentPerformanceQuery,
  agentPerformanceWorkflowId,
  agentRunObservedSignal,
} from '../core/messages/agent-performance';
import type { AgentPerformanceSummary } from '../core/schemas/pipeline-spec';
import { PIPELINE_TASK_QUEUE } from '../core/task-queues';

const reprioritizeInputSchema = z
  .object({
    workflowId: z.string().min(1),
    runId: z.string().min(1),
    activityIds: z.array(z.string().min(1)),
    priorityKey: z.number().int().min(1).max(5),
  })
  .strict();

export type ReprioritizeStepsInput = z.infer<typeof reprioritizeInputSchema>;

/** gRPC NOT_FOUND: the activity finished (or never was) by the time the change arrived. */
const GRPC_NOT_FOUND = 5;

function isNotFound(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === GRPC_NOT_FOUND;
}

export function createPipelineControlActivities(client: Client, logger: Logger) {
  return {
    /**
     * Changes the priority of step activities in place (UpdateActivityOptions):
     * one still in the task queue is matched with its new priority; one already
     * running keeps running and its retries are queued with the new priority.
     * Returns the activity ids it changed; finished ones are skipped.
     */
    async reprioritizeSteps(raw: ReprioritizeStepsInput): Promise<string[]> {
      const input = reprioritizeInputSchema.parse(raw);
      const changed: string[] = [];
      for (const id of input.activityIds) {
        try {
          await client.workflowService.updateActivityOptions({
            namespace: client.options.namespace,
            execution: { workflowId: input.workflowId, runId: input.runId },
            id,
            activityOptions: { priority: { priorityKey: input.priorityKey } },
            updateMask: { paths: ['priority.priority_key'] },
          });
          changed.push(id);
        } catch (err) {
          if (!isNotFound(err)) throw err;
        }
      }
      logger.info(
        { workflowId: input.workflowId, changed, priorityKey: input.priorityKey },
        'steps reprioritized',
      );
      return changed;
    },

    /** What the agent's past runs showed, or null when it has none yet. */
    async readAgentPerformance(agent: string): Promise<AgentPerformanceSummary | null> {
      try {
        return await client.workflow
          .getHandle(agentPerformanceWorkflowId(agent))
          .query(agentPerformanceQuery);
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) return null;
        throw err;
      }
    },

    /** Reports one agent step to the agent's performance workflow, starting it if needed. */
    async recordAgentRun(raw: AgentRunObservation): Promise<void> {
      const observation = agentRunObservationSchema.parse(raw);
      await client.workflow.signalWithStart(AGENT_PERFORMANCE_WORKFLOW_TYPE, {
        workflowId: agentPerformanceWorkflowId(observation.agent),
        taskQueue: PIPELINE_TASK_QUEUE,
        args: [{ agent: observation.agent }],
        signal: agentRunObservedSignal,
        signalArgs: [observation],
        staticSummary: `Performance record of agent ${observation.agent}`,
      });
    },
  };
}

export type PipelineControlActivities = ReturnType<typeof createPipelineControlActivities>;
