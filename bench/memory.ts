/**
 * Agent memory benchmark, through the project's API (MemoryStore: validation,
 * embedding, isolation filter, retention check) against the memory server:
 *
 * - volume: `points` memories (100,000 full, 10,000 quick) retained in batches
 *   with the in-process hashing embedder, so the figures are the engine's and
 *   the API's, not the model's: `retainPointsPerS`, then `recallP50Ms` /
 *   `recallP99Ms` of recalls of one agent of one project (embedding a query
 *   with hashing takes well under a millisecond), beside raw
 *   @qdrant/js-client-rest queries with the same filter (`rawRecall*`), and
 *   the memory server's resident memory when its pid is known (`memoryServerRssMb`, right
 *   after the recalls; `memoryServerRssEndMb` at the end, with e5 and LightRAG loaded);
 * - `embedP50Ms`: one recall query embedded by the e5 embedder service;
 * - quality on the labelled set of bench/memory-retrieval-set.ts (110
 *   paraphrased questions over 1,150 memories with distractors across
 *   projects and agents): recall@5 and MRR with e5 and with hashing;
 * - `graphRecallP50Ms`: LightRAG graph context for a question, from a graph of
 *   one agent holding 40 fact sets.
 *
 *     npx tsx bench/memory.ts [--quick]   # against QDRANT_URL, or a local server of its own
 *
 * Prints one JSON object on stdout. Collections are created under a unique
 * prefix and dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { HashNgramEmbedder, type Embedder } from '../activities/memory/embedder';
import { buildReadFilter } from '../activities/memory/filters';
import { recallGraph, retainGraphFacts } from '../activities/memory/graph';
import { ServiceEmbedder } from '../activities/memory/service-embedder';
import { createQdrantClient, MemoryStore } from '../activities/memory/store';
import type { MemoryScope } from '../core/schemas/memory';
import { buildRetrievalSet, scoreRetrieval } from './memory-retrieval-set';

export interface MemoryBenchOptions {
  /** Qdrant's REST API. */
  url: string;
  /** The memory server (embedder service, graphs); default: `url`. */
  memoryUrl?: string;
  apiKey?: string;
  /** Points retained through the project's API: the collection size recalls run against. */
  points?: number;
  /** Memories per retain call. */
  batchSize?: number;
  /** Timed recalls (after a short warm-up). */
  recallSamples?: number;
  topK?: number;
  seed?: number;
  /** Where the server keeps its data, echoed in the result (e.g. "tmpfs", "disk"). */
  storage?: string;
  /** The memory server's process id, to report its resident memory. */
  serverPid?: number;
}

export interface MemoryBenchResult {
  qdrantUrl: string;
  storage: string;
  points: number;
  batchSize: number;
  recallSamples: number;
  topK: number;
  recallP50Ms: number;
  recallP99Ms: number;
  rawRecallP50Ms: number;
  rawRecallP99Ms: number;
  retainPointsPerS: number;
  memoryServerRssMb?: number;
  /** The same process at the end, once e5 and LightRAG have been used (they load on first use). */
  memoryServerRssEndMb?: number;
  embedP50Ms: number;
  recallAt5Semantic: number;
  recallAt5Hashing: number;
  mrrSemantic: number;
  mrrHashing: number;
  retrievalQueries: number;
  retrievalMemories: number;
  graphRecallP50Ms: number;
  totalSeconds: number;
}

const PROJECTS = 10;
const AGENTS_PER_PROJECT = 5;
const WARM_UP_RECALLS = 3;

/** Small deterministic PRNG (mulberry32), so every run writes the same corpus. */
function prng(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function makeVocabulary(random: () => number, size: number): string[] {
  const syllables = [
    'ka',
    'ro',
    'mi',
    'ten',
    'sup',
    'ply',
    'vault',
    'in',
    'vo',
    'ice',
    'ship',
    'dar',
    'lo',
    'gis',
    'qua',
    'rt',
  ];
  return Array.from({ length: size }, () => {
    const length = 2 + Math.floor(random() * 3);
    return Array.from({ length }, () => syllables[Math.floor(random() * syllables.length)]).join('');
  });
}

function sentence(random: () => number, vocabulary: string[], words: number): string {
  return Array.from({ length: words }, () => vocabulary[Math.floor(random() * vocabulary.length)]).join(' ');
}

/** Nearest-rank percentile of durations in ms. */
function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length));
  return Number((sorted[rank - 1] ?? NaN).toFixed(2));
}

async function timed<T>(operation: () => Promise<T>): Promise<number> {
  const started = performance.now();
  await operation();
  return performance.now() - started;
}

function rssMb(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match ? Math.round(Number(match[1]) / 1024) : undefined;
  } catch {
    return undefined;
  }
}

/** recall@5 and MRR of one embedder on the labelled set. */
async function retrievalQuality(
  client: ReturnType<typeof createQdrantClient>,
  prefix: string,
  embedder: Embedder,
): Promise<{ recallAt5: number; mrr: number }> {
  const set = buildRetrievalSet();
  const store = await MemoryStore.open({ client, collectionPrefix: prefix, embedder });
  try {
    const groups = new Map<string, typeof set.memories>();
    for (const memory of set.memories) {
      const group = `${memory.project}\u0000${memory.agent}`;
      groups.set(group, [...(groups.get(group) ?? []), memory]);
    }
    for (const memories of groups.values()) {
      for (let i = 0; i < memories.length; i += 64) {
        const batch = memories.slice(i, i + 64);
        await store.retain({
          project: batch[0]!.project,
          agent: batch[0]!.agent,
          pipeline: 'retrieval-set',
          step: 'load',
          provenance: { workflowId: 'retrieval-set', stepId: 'load', attempt: 1 },
          memories: batch.map((m) => ({ text: m.text, scope: m.scope, metadata: { key: m.key } })),
        });
      }
    }
    const results: string[][] = [];
    for (const { query } of set.queries) {
      const { memories } = await store.recall({ project: set.project, agent: set.reader, query, topK: 10 });
      results.push(memories.map((m) => String(m.metadata?.key)));
    }
    const scores = scoreRetrieval(set.queries, results);
    return { recallAt5: Number(scores.recallAt5.toFixed(3)), mrr: Number(scores.mrr.toFixed(3)) };
  } finally {
    await client.deleteCollection(store.collection);
  }
}

export async function runMemoryBenchmark(options: MemoryBenchOptions): Promise<MemoryBenchResult> {
  const points = options.points ?? 100_000;
  const batchSize = options.batchSize ?? 250;
  const recallSamples = options.recallSamples ?? 200;
  const topK = options.topK ?? 5;
  const memoryUrl = options.memoryUrl ?? options.url;
  const random = prng(options.seed ?? 20260101);
  const started = performance.now();
  const client = createQdrantClient({ qdrantUrl: options.url, qdrantApiKey: options.apiKey });
  const prefix = `pantheon_memory_bench_${randomBytes(4).toString('hex')}`;
  const e5 = new ServiceEmbedder({ url: memoryUrl, apiKey: options.apiKey });

  // The project's store with its default retention check (10,000 per agent: never trims here, but counts).
  const store = await MemoryStore.open({
    client,
    collectionPrefix: prefix,
    embedder: new HashNgramEmbedder(),
    retention: { maxPointsPerAgent: 10_000 },
  });

  try {
    const vocabulary = makeVocabulary(random, 3000);
    const batches = Array.from({ length: Math.ceil(points / batchSize) }, (_, batchIndex) => {
      const pair = batchIndex % (PROJECTS * AGENTS_PER_PROJECT);
      return {
        project: `project-${pair % PROJECTS}`,
        agent: `agent-${Math.floor(pair / PROJECTS)}`,
        pipeline: `pipeline-${batchIndex % 3}`,
        step: `step-${batchIndex}`,
        memories: Array.from({ length: Math.min(batchSize, points - batchIndex * batchSize) }, (_, i) => ({
          text: sentence(random, vocabulary, 8 + Math.floor(random() * 12)),
          scope: (i % 2 ? 'shared' : 'private') as MemoryScope,
        })),
      };
    });

    // Retain through the project's API, batched.
    let retainMs = 0;
    for (const batch of batches) {
      retainMs += await timed(() =>
        store.retain({
          ...batch,
          provenance: { workflowId: `bench-${batch.step}`, stepId: batch.step, attempt: 1 },
        }),
      );
    }

    // Recalls: the same reader, query and filter through both paths, interleaved so drift hits both alike.
    const recallMs: number[] = [];
    const rawRecallMs: number[] = [];
    for (let i = 0; i < WARM_UP_RECALLS + recallSamples; i++) {
      const batch = batches[Math.floor(random() * batches.length)]!;
      const memory = batch.memories[Math.floor(random() * batch.memories.length)]!;
      const query = memory.text.split(' ').slice(0, 5).join(' ');
      const reader = { project: batch.project, agent: batch.agent };
      const [vector] = await store.embedder.embed([query], 'query');
      const filter = buildReadFilter({ ...reader, scopes: ['shared', 'private'] });
      const projectMs = await timed(() => store.recall({ ...reader, query, topK }));
      const rawMs = await timed(() =>
        client.query(store.collection, { query: vector ?? [], filter, limit: topK, with_payload: true }),
      );
      if (i >= WARM_UP_RECALLS) {
        recallMs.push(projectMs);
        rawRecallMs.push(rawMs);
      }
    }
    const memoryServerRssMb = rssMb(options.serverPid);

    // One query embedded by the e5 service, as a recall does.
    const embedMs: number[] = [];
    for (let i = 0; i < WARM_UP_RECALLS + 30; i++) {
      const ms = await timed(() =>
        e5.embed([`what do we know about supplier ${i} and its deliveries?`], 'query'),
      );
      if (i >= WARM_UP_RECALLS) embedMs.push(ms);
    }

    const semantic = await retrievalQuality(client, `${prefix}_set`, e5);
    const hashing = await retrievalQuality(client, `${prefix}_set`, new HashNgramEmbedder());
    const set = buildRetrievalSet();

    // A graph of one agent: 40 fact sets, then questions about them.
    const server = { url: memoryUrl, apiKey: options.apiKey };
    const graphAgent = { project: `${prefix}_graph`, agent: 'analyst' };
    for (let i = 0; i < 40; i++) {
      await retainGraphFacts(server, {
        ...graphAgent,
        scope: 'private',
        provenance: { workflowId: `${prefix}-graph`, stepId: `facts-${i}` },
        facts: {
          entities: [
            {
              name: `Supplier ${i}`,
              type: 'organization',
              description: `Supplier ${i} makes part ${i % 7} in plant ${i % 5}.`,
            },
            { name: `Plant ${i % 5}`, type: 'location', description: `Plant ${i % 5} is a factory site.` },
          ],
          relations: [
            {
              source: `Supplier ${i}`,
              target: `Plant ${i % 5}`,
              description: `Supplier ${i} produces in Plant ${i % 5}.`,
              keywords: 'produces in',
            },
          ],
          sources: [`Supplier ${i} makes part ${i % 7} in plant ${i % 5}.`],
        },
      });
    }
    const graphMs: number[] = [];
    for (let i = 0; i < WARM_UP_RECALLS + 20; i++) {
      const ms = await timed(() =>
        recallGraph(server, {
          ...graphAgent,
          scopes: ['private'],
          query: `Where does supplier ${i} produce?`,
        }),
      );
      if (i >= WARM_UP_RECALLS) graphMs.push(ms);
    }
    const memoryServerRssEndMb = rssMb(options.serverPid);

    return {
      qdrantUrl: options.url,
      storage: options.storage ?? 'unknown',
      points,
      batchSize,
      recallSamples,
      topK,
      recallP50Ms: percentile(recallMs, 50),
      recallP99Ms: percentile(recallMs, 99),
      rawRecallP50Ms: percentile(rawRecallMs, 50),
      rawRecallP99Ms: percentile(rawRecallMs, 99),
      retainPointsPerS: Math.round(points / (retainMs / 1000)),
      ...(memoryServerRssMb !== undefined && { memoryServerRssMb }),
      ...(memoryServerRssEndMb !== undefined && { memoryServerRssEndMb }),
      embedP50Ms: percentile(embedMs, 50),
      recallAt5Semantic: semantic.recallAt5,
      recallAt5Hashing: hashing.recallAt5,
      mrrSemantic: semantic.mrr,
      mrrHashing: hashing.mrr,
      retrievalQueries: set.queries.length,
      retrievalMemories: set.memories.length,
      graphRecallP50Ms: percentile(graphMs, 50),
      totalSeconds: Number(((performance.now() - started) / 1000).toFixed(1)),
    };
  } finally {
    await client.deleteCollection(store.collection);
  }
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  let url = process.env.QDRANT_URL;
  let storage = 'external (QDRANT_URL)';
  let serverPid: number | undefined;
  let stop: () => Promise<void> = async () => undefined;
  if (!url) {
    // Imported only here: the exported benchmark function needs no test helper.
    const { startLocalQdrantServer } = await import('../test/helpers/qdrant-server');
    const onTmpfs = process.env.MEMORY_BENCH_STORAGE !== 'disk' && existsSync('/dev/shm');
    const storageDir = onTmpfs ? mkdtempSync('/dev/shm/pantheon-bench-qdrant-') : undefined;
    storage = onTmpfs ? 'tmpfs' : 'disk';
    const server = await startLocalQdrantServer({ storageDir });
    url = server.url;
    serverPid = server.process.pid;
    stop = async () => {
      await server.stop();
      if (storageDir) rmSync(storageDir, { recursive: true, force: true });
    };
  }
  try {
    const result = await runMemoryBenchmark({
      url,
      memoryUrl: process.env.PANTHEON_MEMORY_URL || url,
      apiKey: process.env.QDRANT_API_KEY || undefined,
      storage,
      serverPid,
      points: quick ? 10_000 : 100_000,
    });
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await stop();
  }
}

if (require.main === module) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
}
