/**
 * Agents, defined in code: an agent is a name for a Ray task together with how
 * to run it — default resources, the memory scopes it may use, a retry policy,
 * a timeout and an optional fallback agent that takes over when it gives up.
 *
 * Definitions are plain, frozen data validated with zod when the module loads,
 * so workflows can import them (they are compiled into the workflow bundle and
 * therefore identical on every replay).
 *
 * An agent may also declare zod schemas for its positional arguments (`args`,
 * a tuple) and its output (`output`). They type `run.agent(...)` in code
 * pipelines — the arguments a step passes and the value it gets back — and are
 * checked at run time: arguments before the step runs, the output before the
 * step counts as succeeded (a failure names the field, non-retryably).
 */
import { z } from 'zod';
import { memoryScopeSchema, type MemoryScope } from './schemas/memory';
import { AGENT_NAME_PATTERN, retrySchema } from './schemas/pipeline-spec';
import { stepResourcesSchema, type Resources } from './schemas/resources';
import { TASK_REF_FORM, TASK_REF_PATTERN } from './schemas/task-ref';
import { describeZodError } from './issues';

export { AGENT_NAME_PATTERN };

const agentNameSchema = z
  .string()
  .regex(AGENT_NAME_PATTERN, 'lowercase letters, digits and "-" (at most 63)');

export const agentDefinitionSchema = z
  .object({
    name: agentNameSchema,
    /** One sentence: what the agent does. Shown by the CLI and in the docs. */
    description: z.string().min(1),
    /** The Ray task it runs: `package.module:function`. */
    task: z.string().regex(TASK_REF_PATTERN, `a task reference: ${TASK_REF_FORM}`),
    /** What a step of this agent asks Ray for when neither the step nor the agent's history says otherwise. */
    resources: stepResourcesSchema.default({}),
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

/** The schemas an agent may declare for what it takes and returns. */
export interface AgentSchemas<Args extends z.ZodType<unknown[], unknown[]>, Output extends z.ZodType> {
  /** The task's positional arguments, as a tuple (`z.tuple([z.string(), z.number()])`). */
  args?: Args;
  /** What the task returns (its `memories` key, if any, is taken by the orchestrator first). */
  output?: Output;
}

export type AgentDefinitionInput<
  Args extends z.ZodType<unknown[], unknown[]> = z.ZodType<unknown[], unknown[]>,
  Output extends z.ZodType = z.ZodType,
> = z.input<typeof agentDefinitionSchema> & AgentSchemas<Args, Output>;

export interface AgentDefinition<Args extends unknown[] = unknown[], Output = unknown> {
  readonly name: string;
  readonly description: string;
  readonly task: string;
  readonly resources: Readonly<Resources>;
  readonly memory: readonly MemoryScope[];
  readonly retry?: Readonly<z.infer<typeof retrySchema>>;
  readonly timeoutSeconds?: number;
  readonly fallback?: string;
  /** Checks a step's arguments (declared with `args`); never frozen, zod keeps caches on its schemas. */
  readonly args?: z.ZodType<Args, unknown[]>;
  /** Checks the agent's output (declared with `output`). */
  readonly output?: z.ZodType<Output>;
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
export function defineAgent<
  Args extends z.ZodType<unknown[], unknown[]> = z.ZodType<unknown[], unknown[]>,
  Output extends z.ZodType = z.ZodType<unknown>,
>(definition: AgentDefinitionInput<Args, Output>): AgentDefinition<z.input<Args>, z.output<Output>> {
  const { args, output, ...data } = definition;
  const parsed = agentDefinitionSchema.safeParse(data);
  if (!parsed.success) {
    const label = typeof definition?.name === 'string' ? `agent "${definition.name}"` : 'agent';
    throw new AgentDefinitionError(`${label}: ${describeZodError(parsed.error)}`);
  }
  return Object.freeze({
    ...deepFreeze(parsed.data),
    ...(args !== undefined && { args: args as unknown as z.ZodType<z.input<Args>, unknown[]> }),
    ...(output !== undefined && { output: output as z.ZodType<z.output<Output>> }),
  });
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
