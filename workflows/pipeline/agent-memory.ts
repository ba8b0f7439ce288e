/**
 * Where agent memory joins an agent step (called only from the agent step
 * runner in pipeline-run.ts). Workflow-safe.
 *
 * Before the step: the agent's declared scopes are recalled with the step's
 * input as the query (the project's shared memory, the agent's own private
 * memory). The agent host on Ray gives the hits to a task that declares a
 * `memories` parameter, and a scoped read handle to one that declares `memory`
 * (ray-tasks/pantheon_runtime/memory.py).
 * After the step: what the task returned under `memories` (a list of texts, or
 * of `{ text, scope?, metadata? }`) is written with provenance
 * `{ workflowId, stepId, attempt }`; point ids derive from content and
 * provenance without the attempt, so a retried step overwrites its own writes.
 *
 * With the grant patch, one activity opens the step's memory: the recalled
 * memories, the context of the knowledge graphs the agent may read, and a read
 * grant the memory server signed for exactly this project, agent and scopes —
 * the task's `memory` handle reads with it and cannot widen it. Facts the task
 * returns under `facts` (`{ entities, relations, sources?, scope? }`) go into
 * the agent's (private) or the project's (shared) knowledge graph, once per
 * step however often it is retried.
 *
 * Isolation is the store's and the memory server's (every read filtered by
 * project, private reads also by agent; graphs kept apart by storage); here an
 * agent may only write to the scopes it declared.
 */
import type { AgentTaskMemory } from '../../core/agent-host';
import { ApplicationFailure, patched, proxyActivities, workflowInfo } from '@temporalio/workflow';
import { z } from 'zod';
import type { MemoryActivities } from '../../activities/memory/memory-activities';
import type { AgentDefinition } from '../../core/agents';
import type { MapCall } from '../../core/schemas/map-step';
import {
  graphFactsSchema,
  MAX_MEMORIES_PER_RETAIN,
  memoryMetadataSchema,
  memoryQueryFromStepInput,
  memoryScopeSchema,
  memoryTextSchema,
  type GraphFacts,
  type MemoryHit,
  type MemoryScope,
  type MemoryToRetain,
} from '../../core/schemas/memory';
import { describeZodError } from '../../core/issues';

/** Runs started before memory was wired in replay without it. */
export const AGENT_MEMORY_PATCH = 'agent-memory-lifecycle';
/** Runs started before grants and knowledge graphs recall and retain without them. */
export const AGENT_MEMORY_GRANT_PATCH = 'agent-memory-grant-graph';
/** How many memories an agent step is given before it runs. */
export const AGENT_RECALL_TOP_K = 5;

const { recallMemory, retainMemory, openAgentMemory, retainAgentFacts } = proxyActivities<MemoryActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 5, initialInterval: '500 milliseconds' },
});

export interface AgentStepMemoryContext {
  project: string;
  pipeline: string;
  stepId: string;
  agent: AgentDefinition;
}

/** A step's resolved inputs; a map step's also its list (or a reference to it). */
export type StepInputs = { args: unknown[]; kwargs: Record<string, unknown>; map?: MapCall };

function usesMemory(agent: AgentDefinition): boolean {
  return agent.memory.length > 0 && patched(AGENT_MEMORY_PATCH);
}

/** The memory an agent's task starts with; undefined for an agent that keeps none. */
export async function recallForAgentStep(
  context: AgentStepMemoryContext,
  inputs: StepInputs,
): Promise<AgentTaskMemory | undefined> {
  if (!usesMemory(context.agent)) return undefined;
  const scopes = [...context.agent.memory];
  const query = memoryQueryFromStepInput({ args: inputs.args, kwargs: inputs.kwargs });
  const base = { project: context.project, agent: context.agent.name, scopes };
  if (patched(AGENT_MEMORY_GRANT_PATCH)) {
    const opened = await openAgentMemory({
      ...base,
      topK: AGENT_RECALL_TOP_K,
      ...(query !== undefined && { query }),
    });
    return { ...base, recalled: opened.memories.map(asRecalled), graph: opened.graph, grant: opened.grant };
  }
  const { memories } =
    query === undefined ? { memories: [] } : await recallMemory({ ...base, query, topK: AGENT_RECALL_TOP_K });
  return { ...base, recalled: memories.map(asRecalled) };
}

function asRecalled({ text, scope, agent, pipeline, step, createdAt, score }: MemoryHit) {
  return { text, scope, agent, pipeline, step, createdAt, score };
}

// A bare text is short for `{ text }`; read so, an error names the exact field (`[0].scope`, not just `[0]`).
const returnedMemorySchema = z.preprocess(
  (entry) => (typeof entry === 'string' ? { text: entry } : entry),
  z
    .object({
      text: memoryTextSchema,
      scope: memoryScopeSchema.optional(),
      metadata: memoryMetadataSchema.optional(),
    })
    .strict(),
);
const returnedMemoriesSchema = z
  .array(returnedMemorySchema)
  .max(MAX_MEMORIES_PER_RETAIN, { error: `must hold at most ${MAX_MEMORIES_PER_RETAIN} memories` });

/**
 * What an agent's output asks to remember, each with its scope: a memory
 * without one goes to the agent's private memory when it keeps one, otherwise
 * to the project's shared memory. Throws (non-retryably, naming the field) on
 * a malformed list or a scope the agent did not declare.
 */
export function memoriesToRetain(agent: AgentDefinition, output: unknown): MemoryToRetain[] {
  if (typeof output !== 'object' || output === null || Array.isArray(output) || !('memories' in output))
    return [];
  const parsed = returnedMemoriesSchema.safeParse((output as { memories: unknown }).memories);
  if (!parsed.success) {
    throw ApplicationFailure.nonRetryable(
      `agent ${agent.name} returned invalid memories: ${describeZodError(parsed.error, 'output.memories')}`,
      'AgentMemoryInvalid',
    );
  }
  const fallbackScope: MemoryScope = agent.memory.includes('private') ? 'private' : 'shared';
  return parsed.data.map((entry, index) => {
    const scope = entry.scope ?? fallbackScope;
    if (!agent.memory.includes(scope))
      throw ApplicationFailure.nonRetryable(
        `agent ${agent.name} returned invalid memories: output.memories[${index}].scope: "${scope}" is not one of the agent's memory scopes (${agent.memory.join(', ') || 'none'})`,
        'AgentMemoryInvalid',
      );
    return { text: entry.text, scope, ...(entry.metadata ? { metadata: entry.metadata } : {}) };
  });
}

// Facts for the knowledge graph: the graph's own schema, plus the scope they go to.
const returnedFactsSchema = z
  .object({ scope: memoryScopeSchema.optional() })
  .catchall(z.unknown())
  .transform(({ scope, ...facts }) => ({ scope, facts }));

/**
 * The facts an agent's output asks to keep in its knowledge graph, with the
 * scope they go to (as for memories: private when the agent keeps private
 * memory). Undefined when the output has no `facts`. Throws non-retryably,
 * naming the field, on malformed facts or an undeclared scope.
 */
export function factsToRetain(
  agent: AgentDefinition,
  output: unknown,
): { scope: MemoryScope; facts: GraphFacts } | undefined {
  if (typeof output !== 'object' || output === null || Array.isArray(output) || !('facts' in output))
    return undefined;
  const invalid = (detail: string) =>
    ApplicationFailure.nonRetryable(
      `agent ${agent.name} returned invalid facts: ${detail}`,
      'AgentMemoryInvalid',
    );
  const split = returnedFactsSchema.safeParse((output as { facts: unknown }).facts);
  if (!split.success) throw invalid(describeZodError(split.error, 'output.facts'));
  const facts = graphFactsSchema.safeParse(split.data.facts);
  if (!facts.success) throw invalid(describeZodError(facts.error, 'output.facts'));
  const scope = split.data.scope ?? (agent.memory.includes('private') ? 'private' : 'shared');
  if (!agent.memory.includes(scope))
    throw invalid(
      `output.facts.scope: "${scope}" is not one of the agent's memory scopes (${agent.memory.join(', ') || 'none'})`,
    );
  return { scope, facts: facts.data };
}

/** Writes what the agent chose to remember from its output; `attempt` is the Ray step's attempt that produced it. */
export async function retainAfterAgentStep(
  context: AgentStepMemoryContext,
  output: unknown,
  attempt: number,
): Promise<void> {
  if (!usesMemory(context.agent)) return;
  const memories = memoriesToRetain(context.agent, output);
  const provenance = {
    workflowId: workflowInfo().workflowId,
    stepId: context.stepId,
    attempt: Math.max(1, attempt),
  };
  if (memories.length > 0) {
    await retainMemory({
      project: context.project,
      agent: context.agent.name,
      pipeline: context.pipeline,
      step: context.stepId,
      provenance,
      memories,
    });
  }
  if (!patched(AGENT_MEMORY_GRANT_PATCH)) return;
  const facts = factsToRetain(context.agent, output);
  if (facts === undefined) return;
  await retainAgentFacts({
    project: context.project,
    agent: context.agent.name,
    scope: facts.scope,
    provenance,
    facts: facts.facts,
  });
}
