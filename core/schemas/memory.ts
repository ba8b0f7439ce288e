import { z } from 'zod';

/**
 * Agent memory: what workflows send to the memory activities and get back.
 * Imports only zod, so workflows can validate before scheduling an activity;
 * the activities validate again, because anything may call them.
 *
 * Isolation is not expressed here but enforced by the store: every read is
 * filtered by `project`, and private reads also by `agent`.
 */

/** `shared`: every agent of the project reads it. `private`: only the agent that wrote it. */
export const MEMORY_SCOPES = ['shared', 'private'] as const;
export type MemoryScope = (typeof MEMORY_SCOPES)[number];

/** Longest memory text or query, in UTF-16 code units (what `String.length` counts). */
export const MAX_MEMORY_TEXT_CHARS = 8000;
/** Most memories one retain call may write (one embedding batch, one upsert). */
export const MAX_MEMORIES_PER_RETAIN = 256;
/** Most matches one recall or search returns. */
export const MAX_RECALL_TOP_K = 100;
export const DEFAULT_RECALL_TOP_K = 5;
export const MAX_METADATA_KEYS = 32;

// A text is embedded from its words: letters, digits and combining marks. One
// without any has nothing to embed and would make a zero vector.
const HAS_WORD_CHARACTER = /[\p{L}\p{N}\p{M}]/u;
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f]/;

export const memoryScopeSchema = z.enum(MEMORY_SCOPES, {
  error: (issue) => `must be "shared" or "private", got ${JSON.stringify(issue.input)}`,
});

/** Project, agent, pipeline and step names: exact-match filter values. */
export const memoryIdentifierSchema = z
  .string({ error: 'must be a string' })
  .min(1, { error: 'must not be empty' })
  .max(256, { error: 'must be at most 256 characters' })
  .refine((value) => !CONTROL_CHARACTER.test(value), { error: 'must not contain control characters' })
  .refine((value) => value.trim() === value, { error: 'must not start or end with whitespace' });

export const memoryTextSchema = z
  .string({ error: 'must be a string' })
  .refine((text) => text.trim().length > 0, { error: 'must not be empty' })
  .refine((text) => text.length <= MAX_MEMORY_TEXT_CHARS, {
    error: `must be at most ${MAX_MEMORY_TEXT_CHARS} characters`,
  })
  .refine((text) => text.trim().length === 0 || HAS_WORD_CHARACTER.test(text), {
    error: 'must contain at least one letter or digit',
  });

/** Which step attempt wrote a memory. `attempt` is recorded, but not part of the point id. */
export const memoryProvenanceSchema = z
  .object({
    workflowId: z.string().min(1, { error: 'must not be empty' }).max(1000),
    stepId: z.string().min(1, { error: 'must not be empty' }).max(1000),
    attempt: z.number().int().min(1, { error: 'must be 1 or more' }),
  })
  .strict();

/** Small, flat, stored with the memory and returned with it; not filterable. */
export const memoryMetadataSchema = z
  .record(z.string().min(1).max(128), z.union([z.string().max(1000), z.number(), z.boolean()]))
  .refine((metadata) => Object.keys(metadata).length <= MAX_METADATA_KEYS, {
    error: `must have at most ${MAX_METADATA_KEYS} keys`,
  });

/** An agent's declared memory scopes: distinct, at least one. */
export const memoryScopesSchema = z
  .array(memoryScopeSchema)
  .min(1, { error: 'must name at least one scope' })
  .refine((scopes) => new Set(scopes).size === scopes.length, { error: 'must not repeat a scope' });

export const memoryToRetainSchema = z
  .object({
    text: memoryTextSchema,
    scope: memoryScopeSchema,
    metadata: memoryMetadataSchema.optional(),
  })
  .strict();

export const retainMemoryInputSchema = z
  .object({
    project: memoryIdentifierSchema,
    agent: memoryIdentifierSchema,
    pipeline: memoryIdentifierSchema,
    step: memoryIdentifierSchema,
    provenance: memoryProvenanceSchema,
    memories: z
      .array(memoryToRetainSchema)
      .min(1, { error: 'must hold at least one memory' })
      .max(MAX_MEMORIES_PER_RETAIN, { error: `must hold at most ${MAX_MEMORIES_PER_RETAIN} memories` }),
  })
  .strict();

export const recallMemoryInputSchema = z
  .object({
    project: memoryIdentifierSchema,
    agent: memoryIdentifierSchema,
    query: memoryTextSchema,
    scopes: memoryScopesSchema.default([...MEMORY_SCOPES]),
    topK: z
      .number()
      .int()
      .min(1, { error: 'must be 1 or more' })
      .max(MAX_RECALL_TOP_K, { error: `must be at most ${MAX_RECALL_TOP_K}` })
      .default(DEFAULT_RECALL_TOP_K),
    /** Only memories written by this pipeline; all of the project's pipelines when absent. */
    pipeline: memoryIdentifierSchema.optional(),
    /** Cosine similarity below which a match is dropped. */
    minScore: z.number().min(-1).max(1).optional(),
  })
  .strict();

/**
 * Deletes within one project: all of it, or only what matches every given
 * field. `agent` selects what that agent wrote, shared and private.
 */
export const forgetMemoryInputSchema = z
  .object({
    project: memoryIdentifierSchema,
    agent: memoryIdentifierSchema.optional(),
    pipeline: memoryIdentifierSchema.optional(),
    scope: memoryScopeSchema.optional(),
  })
  .strict();

/**
 * An operator's look into one project's memory (the CLI). Private memory is
 * only listed for a named agent, the same rule every read follows.
 */
export const searchProjectMemoryInputSchema = z
  .object({
    project: memoryIdentifierSchema,
    /** Ranks by similarity when given; lists newest first when absent. */
    query: memoryTextSchema.optional(),
    scopes: memoryScopesSchema.default(['shared']),
    agent: memoryIdentifierSchema.optional(),
    pipeline: memoryIdentifierSchema.optional(),
    limit: z
      .number()
      .int()
      .min(1, { error: 'must be 1 or more' })
      .max(MAX_RECALL_TOP_K, { error: `must be at most ${MAX_RECALL_TOP_K}` })
      .default(20),
  })
  .strict()
  .superRefine((input, ctx) => {
    if (input.scopes.includes('private') && input.agent === undefined) {
      ctx.addIssue({ code: 'custom', path: ['agent'], message: 'is required to read private memory' });
    }
  });

/**
 * A recall query made from a step's input: its string values, depth first,
 * joined and cut to the longest query allowed. Undefined when the input holds
 * no words (then there is nothing to recall with).
 */
export function memoryQueryFromStepInput(input: unknown): string | undefined {
  const parts: string[] = [];
  let length = 0;
  const visit = (value: unknown, depth: number): void => {
    if (length >= MAX_MEMORY_TEXT_CHARS || depth > 20) return;
    if (typeof value === 'string') {
      parts.push(value);
      length += value.length + 1;
    } else if (typeof value === 'number' || typeof value === 'boolean') {
      visit(String(value), depth);
    } else if (Array.isArray(value)) {
      for (const item of value) visit(item, depth + 1);
    } else if (value !== null && typeof value === 'object') {
      for (const item of Object.values(value)) visit(item, depth + 1);
    }
  };
  visit(input, 0);
  const query = parts.join(' ').slice(0, MAX_MEMORY_TEXT_CHARS).trim();
  return HAS_WORD_CHARACTER.test(query) ? query : undefined;
}

export type MemoryProvenance = z.infer<typeof memoryProvenanceSchema>;
export type MemoryMetadata = z.infer<typeof memoryMetadataSchema>;
export type MemoryToRetain = z.infer<typeof memoryToRetainSchema>;
export type RetainMemoryInput = z.input<typeof retainMemoryInputSchema>;
export type RecallMemoryInput = z.input<typeof recallMemoryInputSchema>;
export type ForgetMemoryInput = z.input<typeof forgetMemoryInputSchema>;
export type SearchProjectMemoryInput = z.input<typeof searchProjectMemoryInputSchema>;

/** One stored memory as reads return it. */
export interface MemoryRecord {
  id: string;
  text: string;
  scope: MemoryScope;
  project: string;
  agent: string;
  pipeline: string;
  step: string;
  /** ISO 8601, UTC. */
  createdAt: string;
  provenance: MemoryProvenance;
  metadata?: MemoryMetadata;
}

/** A recalled memory: the record and its cosine similarity to the query. */
export interface MemoryHit extends MemoryRecord {
  score: number;
}

export interface RetainMemoryResult {
  /** Point ids, in the order of `memories`; the same ids when a step is retried. */
  ids: string[];
  collection: string;
}

export interface RecallMemoryResult {
  memories: MemoryHit[];
}

export interface ForgetMemoryResult {
  deleted: number;
}

// --- knowledge-graph memory (LightRAG on the memory server)

export const MAX_GRAPH_FACTS = 200;
const graphNameSchema = z.string().trim().min(1, { error: 'must not be empty' }).max(256);
const graphDescriptionSchema = z.string().trim().min(1, { error: 'must not be empty' }).max(4000);

/**
 * Structured facts a step returns under `facts` for its agent's knowledge
 * graph: entities, relations between them, and the source texts they come from.
 */
export const graphFactsSchema = z
  .object({
    entities: z
      .array(
        z
          .object({
            name: graphNameSchema,
            type: z.string().trim().min(1).max(64).optional(),
            description: graphDescriptionSchema,
          })
          .strict(),
      )
      .max(MAX_GRAPH_FACTS)
      .default([]),
    relations: z
      .array(
        z
          .object({
            source: graphNameSchema,
            target: graphNameSchema,
            description: graphDescriptionSchema,
            keywords: z.string().max(512).optional(),
          })
          .strict(),
      )
      .max(MAX_GRAPH_FACTS)
      .default([]),
    sources: z.array(memoryTextSchema).max(MAX_GRAPH_FACTS).default([]),
  })
  .strict()
  .refine((facts) => facts.entities.length + facts.relations.length > 0, {
    error: 'must hold at least one entity or relation',
  });

export type GraphFacts = z.output<typeof graphFactsSchema>;

/** Graph context recalled for a step: LightRAG's entities, relations and sources, as text. */
export interface GraphContext {
  scope: MemoryScope;
  context: string;
}

export const openAgentMemoryInputSchema = z
  .object({
    project: memoryIdentifierSchema,
    agent: memoryIdentifierSchema,
    scopes: memoryScopesSchema,
    /** The step's input as a query; without one nothing is recalled, but the grant is still issued. */
    query: memoryTextSchema.optional(),
    topK: z.number().int().min(1).max(MAX_RECALL_TOP_K).default(DEFAULT_RECALL_TOP_K),
  })
  .strict();
export type OpenAgentMemoryInput = z.input<typeof openAgentMemoryInputSchema>;

/** What an agent step starts with: recalled memories, graph context and a read grant for its task. */
export interface OpenAgentMemoryResult {
  memories: MemoryHit[];
  graph: GraphContext[];
  grant: { token: string; expiresAt: number };
}

export const retainAgentFactsInputSchema = z
  .object({
    project: memoryIdentifierSchema,
    agent: memoryIdentifierSchema,
    scope: memoryScopeSchema,
    provenance: memoryProvenanceSchema,
    facts: graphFactsSchema,
  })
  .strict();
export type RetainAgentFactsInput = z.input<typeof retainAgentFactsInputSchema>;
