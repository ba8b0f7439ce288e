/**
 * The seam where agent memory joins an agent step: `recallForAgentStep` runs
 * just before the agent's task is submitted, `retainAfterAgentStep` just after
 * it succeeded. Both are called from exactly one place, the agent step runner
 * in pipeline-run.ts. Workflow-safe.
 *
 * Today both pass through: an agent declares its memory scopes (`memory` in its
 * definition) and they are recorded on the step, but nothing is read or
 * written. Wiring the memory activities in (activities/memory: recallMemory,
 * retainMemory, with the schemas in schemas/memory.ts) means: recall with
 * `{ project, agent, query, scopes: agent.memory }` and hand the hits to the
 * task as a `memories` keyword argument; retain what the task returns under
 * `memories` with provenance `{ workflowId, stepId, attempt }`, whose
 * deterministic point ids make a retried step overwrite its own writes.
 */
import type { AgentDefinition } from '../agents/define';

export interface AgentStepMemoryContext {
  project: string;
  pipeline: string;
  stepId: string;
  agent: AgentDefinition;
}

export type StepInputs = { args: unknown[]; kwargs: Record<string, unknown> };

/** Inputs the agent's task will get, with what it remembers added (none yet: passes through). */
export async function recallForAgentStep(
  _context: AgentStepMemoryContext,
  inputs: StepInputs,
): Promise<StepInputs> {
  return inputs;
}

/** Stores what the agent chose to remember from its output (nothing yet). */
export async function retainAfterAgentStep(
  _context: AgentStepMemoryContext,
  _output: unknown,
): Promise<void> {}
