/**
 * Agents, defined in code: an agent is a name for a Ray task together with how
 * to run it — default resources, the memory scopes it may use, a retry policy,
 * a timeout and an optional fallback agent that takes over when it gives up.
 *
 * Definitions are plain, frozen data validated with zod when the module loads,
 * so workflows can import them (they are compiled into the workflow bundle and
 * therefore identical on every replay).
 */
import { z } from 'zod';
import { formatPath } from '../workflows/dag';
import { memoryScopeSchema, type MemoryScope } from '../workflows/schemas/memory';
import { retrySchema } from '../workflows/schemas/pipeline-spec';
import { resourcesSchema, type Resources } from '../workflows/schemas/resources';
import { TASK_REF_PATTERN } from '../workflows/schemas/task-ref';

export const AGENT_NAME_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;

const agentNameSchema = z
  .string()
  .regex(AGENT_NAME_PATTERN, 'lowercase letters, digits and "-" (at most 63)');

export const agentDefinitionSchema = z
  .object({
    name: agentNameSchema,
    /** One sentence: what the agent does. Shown by the CLI and in the docs. */
    description: z.string().min(1),
    /** The Ray task it runs: `package.module:function`. */
    task: z.string().regex(TASK_REF_PATTERN, 'a task reference: package.module:function'),
    /** What a step of this agent asks Ray for when neither the step nor the agent's history says otherwise. */
    resources: resourcesSchema.default({}),
    /** The memory scopes the agent may read and write; none when it keeps no memory. */
    memory: z
      .array(memoryScopeSchema)
      .default([])
      .refine((scopes) => new Set(scopes).size === scopes.length, 'must not repeat a scope'),
    retry: retrySchema.optional(),
    timeoutSeconds: z.number().positive().optional(),
    /** The agent that runs the step when this one has exhausted its retries. Same inputs. */
    fallback: agentNameSchema.optional(),
  })
  .strict()
  .refine((agent) => agent.fallback !== agent.name, {
    path: ['fallback'],
    message: 'an agent cannot be its own fallback',
  });

export type AgentDefinitionInput = z.input<typeof agentDefinitionSchema>;

export interface AgentDefinition {
  readonly name: string;
  readonly description: string;
  readonly task: string;
  readonly resources: Readonly<Resources>;
  readonly memory: readonly MemoryScope[];
  readonly retry?: Readonly<z.infer<typeof retrySchema>>;
  readonly timeoutSeconds?: number;
  readonly fallback?: string;
}

export class AgentDefinitionError extends Error {
  override name = 'AgentDefinitionError';
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const inner of Object.values(value)) deepFreeze(inner);
    Object.freeze(value);
  }
  return value;
}

/** Validates and freezes an agent definition; throws naming the offending field. */
export function defineAgent(definition: AgentDefinitionInput): AgentDefinition {
  const parsed = agentDefinitionSchema.safeParse(definition);
  if (!parsed.success) {
    const label = typeof definition?.name === 'string' ? `agent "${definition.name}"` : 'agent';
    const issues = parsed.error.issues.map((i) => `${formatPath(i.path) || '(definition)'}: ${i.message}`);
    throw new AgentDefinitionError(`${label}: ${issues.join('; ')}`);
  }
  return deepFreeze(parsed.data);
}

/**
 * Every agent a worker knows, by name. Checked as a whole: names are unique,
 * every fallback exists, and fallbacks do not go round in a circle.
 */
export class AgentCatalog {
  private readonly byName = new Map<string, AgentDefinition>();

  constructor(agents: readonly AgentDefinition[]) {
    for (const agent of agents) {
      if (this.byName.has(agent.name))
        throw new AgentDefinitionError(`agent "${agent.name}" is defined twice`);
      this.byName.set(agent.name, agent);
    }
    for (const agent of agents) {
      if (agent.fallback !== undefined && !this.byName.has(agent.fallback))
        throw new AgentDefinitionError(
          `agent "${agent.name}": fallback "${agent.fallback}" is not a known agent`,
        );
      this.fallbackChain(agent.name);
    }
  }

  get names(): string[] {
    return [...this.byName.keys()].sort();
  }

  get(name: string): AgentDefinition | undefined {
    return this.byName.get(name);
  }

  /** The agent, then its fallback, then the fallback's fallback, and so on. */
  fallbackChain(name: string): AgentDefinition[] {
    const chain: AgentDefinition[] = [];
    for (let current = this.byName.get(name); current; current = this.byName.get(current.fallback ?? '')) {
      if (chain.includes(current))
        throw new AgentDefinitionError(
          `agent "${name}": fallbacks form a cycle: ${[...chain, current].map((a) => a.name).join(' -> ')}`,
        );
      chain.push(current);
      if (current.fallback === undefined) break;
    }
    return chain;
  }
}
