/**
 * The contract with `pantheon_tasks.agent_host:run_agent`, the Ray task every
 * agent step runs through: it runs the agent's own task and measures it.
 * Workflow-safe.
 */
import { z } from 'zod';
import type { GraphContext, MemoryHit, MemoryScope } from './schemas/memory';

export const AGENT_HOST_TASK = 'pantheon_tasks.agent_host:run_agent';

export const agentHostOutputSchema = z.object({
  output: z.unknown(),
  usage: z.object({
    agent: z.string(),
    cpuSeconds: z.number().min(0),
    wallSeconds: z.number().min(0),
    peakMemoryMb: z.number().min(0),
    peakMeasuredBy: z.string(),
  }),
});

export type AgentHostOutput = z.infer<typeof agentHostOutputSchema>;

/** The kwargs of the host task for one agent call. */
export function agentHostKwargs(
  agent: string,
  task: string,
  inputs: { args: unknown[]; kwargs: Record<string, unknown> },
  memory?: AgentTaskMemory,
): Record<string, unknown> {
  return { agent, task, args: inputs.args, kwargs: inputs.kwargs, ...(memory && { memory }) };
}

/**
 * What the agent host on Ray gets about memory: whom a `memory` handle reads
 * for, and what was recalled for the step (given to a task that takes `memories`).
 */
export interface AgentTaskMemory {
  project: string;
  agent: string;
  scopes: MemoryScope[];
  recalled: RecalledMemory[];
  /** Knowledge-graph context of the graphs the agent may read (runs with the grant patch). */
  graph?: GraphContext[];
  /**
   * The memory server's signed read grant for this agent of this project: the
   * task's `memory` handle reads with it, and the server builds the isolation
   * filter from it alone (runs with the grant patch; absent in older runs).
   */
  grant?: { token: string; expiresAt: number };
}

/** A recalled memory as the task sees it: what it says, where it came from, how close it is. */
export type RecalledMemory = Pick<
  MemoryHit,
  'text' | 'scope' | 'agent' | 'pipeline' | 'step' | 'createdAt' | 'score'
>;
