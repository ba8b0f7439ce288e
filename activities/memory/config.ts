import { z } from 'zod';

export const MEMORY_EMBEDDERS = ['e5-small-v1', 'hash-ngram-v1'] as const;
export type MemoryEmbedderName = (typeof MEMORY_EMBEDDERS)[number];
import { describeZodError } from '../../core/issues';

// Unset and empty environment variables both mean "use the default".
const unsetIfEmpty = (value: unknown) => (value === '' ? undefined : value);

const envSchema = z.object({
  QDRANT_URL: z.preprocess(
    unsetIfEmpty,
    z
      .string()
      .regex(/^https?:\/\/[^\s]+$/, { error: 'must be an http:// or https:// URL' })
      .default('http://127.0.0.1:6333'),
  ),
  QDRANT_API_KEY: z.preprocess(unsetIfEmpty, z.string().optional()),
  /**
   * The memory server (stack/qdrant-local/server.py): embedder service, read
   * grants for Ray tasks, knowledge graphs. Default: QDRANT_URL, where the
   * local stack's memory server also serves Qdrant's API. With a real Qdrant
   * at QDRANT_URL, point this at a memory server of its own.
   */
  PANTHEON_MEMORY_URL: z.preprocess(
    unsetIfEmpty,
    z
      .string()
      .regex(/^https?:\/\/[^\s]+$/, { error: 'must be an http:// or https:// URL' })
      .optional(),
  ),
  /** `e5-small-v1` (semantic, the memory server's embedder service) or `hash-ngram-v1` (lexical, in process). */
  PANTHEON_MEMORY_EMBEDDER: z.preprocess(unsetIfEmpty, z.enum(MEMORY_EMBEDDERS).default('e5-small-v1')),
  /** How long a Ray task's read grant stays valid. */
  PANTHEON_MEMORY_GRANT_SECONDS: z.preprocess(
    unsetIfEmpty,
    z.coerce.number().int().min(60).max(86_400).default(21_600),
  ),
  PANTHEON_MEMORY_COLLECTION_PREFIX: z.preprocess(
    unsetIfEmpty,
    z
      .string()
      .regex(/^[a-z0-9_]{1,64}$/, { error: 'lowercase letters, digits and "_" (at most 64)' })
      .default('pantheon_memory'),
  ),
  /** Oldest memories of an agent beyond this many are dropped; 0 means no limit. */
  PANTHEON_MEMORY_MAX_POINTS_PER_AGENT: z.preprocess(
    unsetIfEmpty,
    z.coerce.number().int().min(0).default(10_000),
  ),
  /** Memories older than this are never returned and are deleted; 0 means they never expire. */
  PANTHEON_MEMORY_TTL_SECONDS: z.preprocess(unsetIfEmpty, z.coerce.number().int().min(0).default(0)),
});

export interface RetentionPolicy {
  /** Per (project, agent), over both scopes. Undefined: no limit. */
  maxPointsPerAgent?: number;
  /** Undefined: memories never expire. */
  ttlMs?: number;
}

export interface MemoryConfig {
  qdrantUrl: string;
  qdrantApiKey?: string;
  /** The memory server; its API key is QDRANT_API_KEY (the local stack's server serves both). */
  memoryUrl: string;
  embedder: MemoryEmbedderName;
  grantSeconds: number;
  collectionPrefix: string;
  retention: RetentionPolicy;
}

/** Reads the memory configuration from the environment; errors name the variable. */
export function memoryConfigFromEnv(env: NodeJS.ProcessEnv = process.env): MemoryConfig {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    throw new Error(`invalid memory configuration: ${describeZodError(parsed.error)}`);
  }
  const vars = parsed.data;
  return {
    qdrantUrl: vars.QDRANT_URL,
    qdrantApiKey: vars.QDRANT_API_KEY,
    memoryUrl: vars.PANTHEON_MEMORY_URL ?? vars.QDRANT_URL,
    embedder: vars.PANTHEON_MEMORY_EMBEDDER,
    grantSeconds: vars.PANTHEON_MEMORY_GRANT_SECONDS,
    collectionPrefix: vars.PANTHEON_MEMORY_COLLECTION_PREFIX,
    retention: {
      maxPointsPerAgent: vars.PANTHEON_MEMORY_MAX_POINTS_PER_AGENT || undefined,
      ttlMs: vars.PANTHEON_MEMORY_TTL_SECONDS ? vars.PANTHEON_MEMORY_TTL_SECONDS * 1000 : undefined,
    },
  };
}
