import { QdrantClient, type Schemas } from '@qdrant/js-client-rest';
import { z } from 'zod';
import {
  forgetMemoryInputSchema,
  memoryMetadataSchema,
  openAgentMemoryInputSchema,
  retainAgentFactsInputSchema,
  type OpenAgentMemoryInput,
  type OpenAgentMemoryResult,
  type RetainAgentFactsInput,
  memoryScopeSchema,
  recallMemoryInputSchema,
  retainMemoryInputSchema,
  searchProjectMemoryInputSchema,
  type ForgetMemoryInput,
  type ForgetMemoryResult,
  type MemoryHit,
  type MemoryRecord,
  type MemoryScope,
  type RecallMemoryInput,
  type RecallMemoryResult,
  type RetainMemoryInput,
  type RetainMemoryResult,
  type SearchProjectMemoryInput,
} from '../../core/schemas/memory';
import type { MemoryConfig, RetentionPolicy } from './config';
import { EMBEDDER_NAME_PATTERN, HashNgramEmbedder, type EmbedKind, type Embedder } from './embedder';
import { recallGraph, retainGraphFacts } from './graph';
import { requestMemoryGrant, type MemoryGrant } from './grants';
import { ServiceEmbedder } from './service-embedder';
import { MemoryConfigError, MemoryInputError } from './errors';
import { buildProjectSelection, buildReadFilter, matchValue, MEMORY_FIELDS } from './filters';
import { memoryPointId } from './point-id';

export const DEFAULT_COLLECTION_PREFIX = 'pantheon_memory';

/** One collection per embedder and dimension, so vectors of two models never meet. */
export function memoryCollectionName(prefix: string, embedder: Pick<Embedder, 'name' | 'dimension'>): string {
  return `${prefix}__${embedder.name}__${embedder.dimension}`;
}

/**
 * The payload indexes the store's filters use. `project` is the tenant key:
 * `is_tenant` lets a Qdrant server co-locate each project's points.
 * `createdAtMs` serves the TTL range filter and oldest-first trimming (order_by
 * needs a range index on a server); nothing matches it by value, so it has no
 * lookup index (with one, the memory server held ~35 MB more at 100,000 points:
 * a value map of as many entries as points, bench/README.md).
 */
export const MEMORY_PAYLOAD_INDEXES: ReadonlyArray<{ field: string; schema: Schemas['PayloadFieldSchema'] }> =
  [
    { field: MEMORY_FIELDS.project, schema: { type: 'keyword', is_tenant: true } },
    { field: MEMORY_FIELDS.scope, schema: 'keyword' },
    { field: MEMORY_FIELDS.agent, schema: 'keyword' },
    { field: MEMORY_FIELDS.pipeline, schema: 'keyword' },
    { field: MEMORY_FIELDS.createdAtMs, schema: { type: 'integer', lookup: false, range: true } },
  ];

export function createQdrantClient(config: Pick<MemoryConfig, 'qdrantUrl' | 'qdrantApiKey'>): QdrantClient {
  // No compatibility probe: it is an unawaited request at construction that
  // only ever logs, and would outlive short-lived clients.
  return new QdrantClient({ url: config.qdrantUrl, apiKey: config.qdrantApiKey, checkCompatibility: false });
}

export interface MemoryStoreOptions {
  client: QdrantClient;
  /** Default: `HashNgramEmbedder` (in process, 384 dimensions); `openMemoryStore` picks the configured one. */
  embedder?: Embedder;
  /** The memory server that issues read grants for Ray tasks (see ./grants.ts). */
  server?: { url: string; apiKey?: string };
  /** How long a read grant is valid (default 6 h). */
  grantSeconds?: number;
  collectionPrefix?: string;
  retention?: RetentionPolicy;
  /** Clock in epoch ms; tests move it to expire memories without waiting. */
  now?: () => number;
}

/** A search result for an operator: a hit when a query ranked it, a record when listed. */
export type MemorySearchEntry = MemoryRecord & { score?: number };

const storedPayloadSchema = z.object({
  project: z.string(),
  scope: memoryScopeSchema,
  agent: z.string(),
  pipeline: z.string(),
  step: z.string(),
  text: z.string(),
  createdAt: z.string(),
  createdAtMs: z.number(),
  provenance: z.object({ workflowId: z.string(), stepId: z.string(), attempt: z.number() }),
  metadata: memoryMetadataSchema.optional(),
});

function parseInput<S extends z.ZodType>(operation: string, schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (!result.success) throw MemoryInputError.fromZod(operation, result.error);
  return result.data;
}

function isConflict(error: unknown): boolean {
  return typeof error === 'object' && error !== null && 'status' in error && error.status === 409;
}

/**
 * Shared and private agent memory in one Qdrant collection per embedder.
 * Isolation is enforced here, not left to callers: every read filters by
 * project, private reads also by the reading agent, and every result is
 * checked against the same rule before it is returned.
 */
export class MemoryStore {
  readonly collection: string;
  readonly collectionPrefix: string;
  readonly embedder: Embedder;
  readonly retention: RetentionPolicy;
  private readonly client: QdrantClient;
  private readonly now: () => number;
  private readonly server?: { url: string; apiKey?: string };
  private readonly grantSeconds: number;

  private constructor(options: MemoryStoreOptions) {
    this.client = options.client;
    this.server = options.server;
    this.grantSeconds = options.grantSeconds ?? 21_600;
    this.embedder = options.embedder ?? new HashNgramEmbedder();
    this.retention = options.retention ?? {};
    this.now = options.now ?? Date.now;
    if (!EMBEDDER_NAME_PATTERN.test(this.embedder.name)) {
      throw new MemoryConfigError(
        `embedder name ${JSON.stringify(this.embedder.name)} is not ${EMBEDDER_NAME_PATTERN}`,
      );
    }
    this.collectionPrefix = options.collectionPrefix ?? DEFAULT_COLLECTION_PREFIX;
    this.collection = memoryCollectionName(this.collectionPrefix, this.embedder);
  }

  /** Opens the store, creating its collection and indexes if missing. */
  static async open(options: MemoryStoreOptions): Promise<MemoryStore> {
    const store = new MemoryStore(options);
    await store.ensureCollection();
    return store;
  }

  /**
   * Creates the collection and its payload indexes when missing, and refuses a
   * collection whose vectors do not fit the embedder. Safe to run concurrently.
   */
  async ensureCollection(): Promise<void> {
    const { exists } = await this.client.collectionExists(this.collection);
    if (!exists) {
      try {
        // float16 vectors: half the memory of float32 (at 100,000 points the memory
        // server's RSS drops by ~140 MB, bench/README.md), and recall is unchanged on
        // the labelled set (e5 recall@5 1.0): cosine scores move by about 1e-3, far
        // less than what separates a relevant memory from an unrelated one. A
        // collection made earlier keeps float32; both are read the same way.
        await this.client.createCollection(this.collection, {
          vectors: { size: this.embedder.dimension, distance: 'Cosine', datatype: 'float16' },
        });
      } catch (error) {
        if (!isConflict(error)) throw error; // another worker created it first
      }
    }
    const info = await this.client.getCollection(this.collection);
    const vectors = info.config.params.vectors;
    const size = vectors && 'size' in vectors && typeof vectors.size === 'number' ? vectors.size : undefined;
    if (size !== this.embedder.dimension) {
      throw new MemoryConfigError(
        `collection ${this.collection} holds vectors of dimension ${size ?? '(named vectors)'}, ` +
          `but embedder ${this.embedder.name} produces ${this.embedder.dimension}; refusing to mix them`,
      );
    }
    if (vectors && 'distance' in vectors && vectors.distance !== 'Cosine') {
      throw new MemoryConfigError(
        `collection ${this.collection} uses ${vectors.distance} distance, not Cosine`,
      );
    }
    const existing = info.payload_schema ?? {};
    for (const index of MEMORY_PAYLOAD_INDEXES) {
      if (index.field in existing) continue;
      await this.client.createPayloadIndex(this.collection, {
        field_name: index.field,
        field_schema: index.schema,
        wait: true,
      });
    }
  }

  /**
   * Writes what an agent learned. Ids come from content and the writing step,
   * so a retried step overwrites its own earlier write. All memories are
   * validated and embedded before anything is written: bad input writes nothing.
   * Then applies the retention policy to the project and the writing agent.
   */
  async retain(input: RetainMemoryInput): Promise<RetainMemoryResult> {
    const request = parseInput('retainMemory', retainMemoryInputSchema, input);
    const vectors = await this.embedChecked(
      request.memories.map((memory) => memory.text),
      'memories',
      'passage',
    );
    const createdAtMs = this.now();
    const createdAt = new Date(createdAtMs).toISOString();
    const points = request.memories.map((memory, index) => {
      const id = memoryPointId({
        project: request.project,
        scope: memory.scope,
        agent: request.agent,
        pipeline: request.pipeline,
        step: request.step,
        workflowId: request.provenance.workflowId,
        stepId: request.provenance.stepId,
        text: memory.text,
      });
      const payload: z.input<typeof storedPayloadSchema> = {
        project: request.project,
        scope: memory.scope,
        agent: request.agent,
        pipeline: request.pipeline,
        step: request.step,
        text: memory.text,
        createdAt,
        createdAtMs,
        provenance: request.provenance,
        ...(memory.metadata ? { metadata: memory.metadata } : {}),
      };
      return { id, vector: vectors[index] ?? [], payload };
    });
    await this.client.upsert(this.collection, { wait: true, points });
    await this.expire(request.project);
    await this.trimAgent(request.project, request.agent);
    return { ids: points.map((point) => point.id), collection: this.collection };
  }

  /**
   * What an agent may know that is relevant to `query`: the shared memory of
   * its project and its own private memory (as `scopes` asks), best first.
   */
  async recall(input: RecallMemoryInput): Promise<RecallMemoryResult> {
    const request = parseInput('recallMemory', recallMemoryInputSchema, input);
    const [vector] = await this.embedChecked([request.query], 'query', 'query');
    const read = {
      project: request.project,
      agent: request.agent,
      scopes: request.scopes,
      pipeline: request.pipeline,
      notBeforeMs: this.notBeforeMs(),
    };
    const response = await this.client.query(this.collection, {
      query: vector ?? [],
      filter: buildReadFilter(read),
      limit: request.topK,
      with_payload: true,
      ...(request.minScore !== undefined ? { score_threshold: request.minScore } : {}),
    });
    return { memories: response.points.map((point) => this.toReadableHit(point, read)) };
  }

  /**
   * An operator's search of one project (the CLI): ranked by `query` when
   * given, newest first otherwise. Shared memory by default; private memory
   * only of the named agent.
   */
  async searchProject(input: SearchProjectMemoryInput): Promise<MemorySearchEntry[]> {
    const request = parseInput('searchProjectMemory', searchProjectMemoryInputSchema, input);
    const read = {
      project: request.project,
      agent: request.agent,
      scopes: request.scopes,
      pipeline: request.pipeline,
      notBeforeMs: this.notBeforeMs(),
    };
    const filter = buildReadFilter(read);
    if (request.query !== undefined) {
      const [vector] = await this.embedChecked([request.query], 'query', 'query');
      const response = await this.client.query(this.collection, {
        query: vector ?? [],
        filter,
        limit: request.limit,
        with_payload: true,
      });
      return response.points.map((point) => this.toReadableHit(point, read));
    }
    const page = await this.client.scroll(this.collection, {
      filter,
      limit: request.limit,
      with_payload: true,
      order_by: { key: MEMORY_FIELDS.createdAtMs, direction: 'desc' },
    });
    return page.points.map((point) => this.toReadableRecord(point, read));
  }

  /** Deletes a project's memory, or the part of it matching every given field. */
  async forget(input: ForgetMemoryInput): Promise<ForgetMemoryResult> {
    const request = parseInput('forgetMemory', forgetMemoryInputSchema, input);
    const filter = buildProjectSelection(request);
    const { count } = await this.client.count(this.collection, { filter, exact: true });
    if (count > 0) await this.client.delete(this.collection, { wait: true, filter });
    return { deleted: count };
  }

  /** Deletes expired memories, of one project or of all. Returns how many. */
  async expire(project?: string): Promise<number> {
    const notBeforeMs = this.notBeforeMs();
    if (notBeforeMs === undefined) return 0;
    const must: Schemas['Condition'][] = [{ key: MEMORY_FIELDS.createdAtMs, range: { lt: notBeforeMs } }];
    if (project !== undefined) must.unshift(matchValue(MEMORY_FIELDS.project, project));
    const { count } = await this.client.count(this.collection, { filter: { must }, exact: true });
    if (count > 0) await this.client.delete(this.collection, { wait: true, filter: { must } });
    return count;
  }

  /** Drops an agent's oldest memories beyond the per-agent limit. Returns how many. */
  async trimAgent(project: string, agent: string): Promise<number> {
    const limit = this.retention.maxPointsPerAgent;
    if (limit === undefined) return 0;
    const filter = {
      must: [matchValue(MEMORY_FIELDS.project, project), matchValue(MEMORY_FIELDS.agent, agent)],
    };
    const { count } = await this.client.count(this.collection, { filter, exact: true });
    const excess = count - limit;
    if (excess <= 0) return 0;
    const oldest = await this.client.scroll(this.collection, {
      filter,
      limit: excess,
      with_payload: false,
      order_by: { key: MEMORY_FIELDS.createdAtMs, direction: 'asc' },
    });
    const ids = oldest.points.map((point) => point.id);
    if (ids.length > 0) await this.client.delete(this.collection, { wait: true, points: ids });
    return ids.length;
  }

  private notBeforeMs(): number | undefined {
    return this.retention.ttlMs === undefined ? undefined : this.now() - this.retention.ttlMs;
  }

  /**
   * A read grant for one agent of one project, for the agent's Ray task
   * (ray-tasks/pantheon_runtime/memory.py): the memory server reads with the
   * grant's project, agent and scopes only, and with this store's collection
   * and retention.
   */
  async issueReadGrant(input: {
    project: string;
    agent: string;
    scopes: MemoryScope[];
  }): Promise<MemoryGrant> {
    return requestMemoryGrant(this.requireServer(), {
      project: input.project,
      agent: input.agent,
      scopes: input.scopes,
      collectionPrefix: this.collectionPrefix,
      embedder: this.embedder.name,
      ...(this.retention.ttlMs !== undefined ? { ttlSeconds: Math.ceil(this.retention.ttlMs / 1000) } : {}),
      expiresInSeconds: this.grantSeconds,
    });
  }

  /**
   * Everything an agent step starts with: the memories recalled for its input,
   * the graph context of the graphs it may read, and a read grant for its task.
   */
  async openForAgent(input: OpenAgentMemoryInput): Promise<OpenAgentMemoryResult> {
    const request = parseInput('openAgentMemory', openAgentMemoryInputSchema, input);
    const server = this.requireServer();
    const { project, agent, scopes, query } = request;
    const [recalled, graph, grant] = await Promise.all([
      query === undefined
        ? { memories: [] }
        : this.recall({ project, agent, scopes, query, topK: request.topK }),
      query === undefined ? [] : recallGraph(server, { project, agent, scopes, query }),
      this.issueReadGrant({ project, agent, scopes }),
    ]);
    return { memories: recalled.memories, graph, grant: { token: grant.token, expiresAt: grant.expiresAt } };
  }

  /** Stores facts a step returned in its agent's (private) or project's (shared) knowledge graph, once. */
  async retainFacts(input: RetainAgentFactsInput): Promise<{ stored: boolean }> {
    const request = parseInput('retainAgentFacts', retainAgentFactsInputSchema, input);
    return retainGraphFacts(this.requireServer(), request);
  }

  private requireServer(): { url: string; apiKey?: string } {
    if (this.server === undefined) {
      throw new MemoryConfigError('this memory store has no memory server (PANTHEON_MEMORY_URL)');
    }
    return this.server;
  }

  private async embedChecked(texts: string[], field: string, kind: EmbedKind): Promise<number[][]> {
    const vectors = await this.embedder.embed(texts, kind);
    const { name, dimension } = this.embedder;
    if (vectors.length !== texts.length) {
      throw new MemoryConfigError(
        `embedder ${name} returned ${vectors.length} vectors for ${texts.length} texts`,
      );
    }
    vectors.forEach((vector, index) => {
      const where = texts.length === 1 && field === 'query' ? field : `${field}.${index}.text`;
      if (vector.length !== dimension) {
        throw new MemoryConfigError(
          `embedder ${name} returned a vector of dimension ${vector.length} for ${where}; ` +
            `collection ${this.collection} holds dimension ${dimension}`,
        );
      }
      if (!vector.every(Number.isFinite) || vector.every((value) => value === 0)) {
        throw new MemoryInputError(field === 'query' ? 'recallMemory' : 'retainMemory', [
          { path: where, message: 'has nothing the embedder can represent' },
        ]);
      }
    });
    return vectors;
  }

  private toReadableRecord(
    point: { id: string | number; payload?: Record<string, unknown> | null },
    read: { project: string; agent?: string; scopes: readonly MemoryScope[]; pipeline?: string },
  ): MemoryRecord {
    const parsed = storedPayloadSchema.safeParse(point.payload);
    if (!parsed.success) {
      throw new Error(`memory point ${point.id} in ${this.collection} has a malformed payload`);
    }
    const payload = parsed.data;
    // Defence in depth: the filter already selected these; a point that breaks
    // the isolation rule means the filter or the server is wrong, and must not reach an agent.
    const readable =
      payload.project === read.project &&
      read.scopes.includes(payload.scope) &&
      (payload.scope === 'shared' || payload.agent === read.agent) &&
      (read.pipeline === undefined || payload.pipeline === read.pipeline);
    if (!readable) {
      throw new Error(`memory isolation violated: point ${point.id} returned for a read it does not match`);
    }
    return {
      id: String(point.id),
      text: payload.text,
      scope: payload.scope,
      project: payload.project,
      agent: payload.agent,
      pipeline: payload.pipeline,
      step: payload.step,
      createdAt: payload.createdAt,
      provenance: payload.provenance,
      ...(payload.metadata ? { metadata: payload.metadata } : {}),
    };
  }

  private toReadableHit(
    point: { id: string | number; score: number; payload?: Record<string, unknown> | null },
    read: { project: string; agent?: string; scopes: readonly MemoryScope[]; pipeline?: string },
  ): MemoryHit {
    return { ...this.toReadableRecord(point, read), score: point.score };
  }
}

/** The embedder the configuration names: e5 through the memory server's embedder service, or hashing in process. */
export function configuredEmbedder(
  config: Pick<MemoryConfig, 'embedder' | 'memoryUrl' | 'qdrantApiKey'>,
): Embedder {
  return config.embedder === 'hash-ngram-v1'
    ? new HashNgramEmbedder()
    : new ServiceEmbedder({ url: config.memoryUrl, apiKey: config.qdrantApiKey });
}

/** Opens the store the environment describes (see `memoryConfigFromEnv`). */
export async function openMemoryStore(
  config: MemoryConfig,
  options: Partial<Omit<MemoryStoreOptions, 'client'>> = {},
): Promise<MemoryStore> {
  return MemoryStore.open({
    client: createQdrantClient(config),
    collectionPrefix: config.collectionPrefix,
    retention: config.retention,
    embedder: configuredEmbedder(config),
    server: { url: config.memoryUrl, apiKey: config.qdrantApiKey },
    grantSeconds: config.grantSeconds,
    ...options,
  });
}
