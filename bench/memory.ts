/**
 * Agent memory benchmark: recall latency (p50/p99) and retain throughput at
 * 10,000 points through the project's API (MemoryStore: validation, embedding,
 * isolation filter, retention check), beside raw @qdrant/js-client-rest calls
 * doing the same storage work in the same run (vectors precomputed, the same
 * filter), so the difference is the project's own overhead.
 *
 *     npx tsx bench/memory.ts     # against QDRANT_URL, or a local server of its own
 *
 * Its own local server keeps its storage on tmpfs (/dev/shm) unless
 * MEMORY_BENCH_STORAGE=disk: local mode commits every point to SQLite
 * separately, and on a small VM's disk each commit's fsync (~3-10 ms) would
 * make the benchmark measure the disk rather than the memory layer. The
 * result names the storage it ran on.
 *
 * Prints one JSON object on stdout. Collections are created under a unique
 * prefix and dropped afterwards.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { buildReadFilter } from '../activities/memory/filters';
import { memoryPointId } from '../activities/memory/point-id';
import { createQdrantClient, MemoryStore } from '../activities/memory/store';
import type { MemoryScope } from '../core/schemas/memory';

export interface MemoryBenchOptions {
  url: string;
  apiKey?: string;
  /** Points retained through the project's API: the collection size recalls run against. */
  points?: number;
  /**
   * Points upserted raw, to measure the raw rate. Fewer than `points` by default:
   * local mode commits every point to SQLite, so the rate does not depend on
   * how many are written, and the whole run stays around two minutes.
   */
  rawUpsertPoints?: number;
  /** Memories per retain call / points per raw upsert. */
  batchSize?: number;
  /** Timed recalls through each path (after a short warm-up). */
  recallSamples?: number;
  topK?: number;
  seed?: number;
  /** Where the server keeps its data, echoed in the result (e.g. "tmpfs", "disk"). */
  storage?: string;
}

export interface MemoryBenchResult {
  qdrantUrl: string;
  storage: string;
  points: number;
  rawUpsertPoints: number;
  batchSize: number;
  recallSamples: number;
  topK: number;
  recallP50Ms: number;
  recallP99Ms: number;
  rawRecallP50Ms: number;
  rawRecallP99Ms: number;
  retainPerS: number;
  rawUpsertPerS: number;
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

export async function runMemoryBenchmark(options: MemoryBenchOptions): Promise<MemoryBenchResult> {
  const points = options.points ?? 10_000;
  const batchSize = options.batchSize ?? 250;
  const rawUpsertPoints = Math.min(options.rawUpsertPoints ?? 2_000, points);
  const recallSamples = options.recallSamples ?? 30;
  const topK = options.topK ?? 5;
  const random = prng(options.seed ?? 20260101);
  const started = performance.now();
  const client = createQdrantClient({ qdrantUrl: options.url, qdrantApiKey: options.apiKey });
  const prefix = `pantheon_memory_bench_${randomBytes(4).toString('hex')}`;

  // The project's store with its default retention check (10,000 per agent: never trims here, but counts).
  const store = await MemoryStore.open({
    client,
    collectionPrefix: prefix,
    retention: { maxPointsPerAgent: 10_000 },
  });
  // The raw path writes to its own collection with the same vectors config and payload indexes.
  const rawCollection = (await MemoryStore.open({ client, collectionPrefix: `${prefix}_raw` })).collection;

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

    // Retain through the project's API.
    let retainMs = 0;
    for (const batch of batches) {
      retainMs += await timed(() =>
        store.retain({
          ...batch,
          provenance: { workflowId: `bench-${batch.step}`, stepId: batch.step, attempt: 1 },
        }),
      );
    }

    // The first of the same points, embedded beforehand (untimed), upserted raw.
    let rawUpsertMs = 0;
    let rawWritten = 0;
    for (const { memories, ...where } of batches.slice(0, Math.ceil(rawUpsertPoints / batchSize))) {
      rawWritten += memories.length;
      const vectors = await store.embedder.embed(
        memories.map((m) => m.text),
        'passage',
      );
      const createdAtMs = Date.now();
      const provenance = { workflowId: `bench-${where.step}`, stepId: where.step, attempt: 1 };
      const rawPoints = memories.map((memory, i) => ({
        id: memoryPointId({
          ...where,
          ...memory,
          workflowId: provenance.workflowId,
          stepId: provenance.stepId,
        }),
        vector: vectors[i] ?? [],
        payload: {
          ...where,
          ...memory,
          createdAt: new Date(createdAtMs).toISOString(),
          createdAtMs,
          provenance,
        },
      }));
      rawUpsertMs += await timed(() => client.upsert(rawCollection, { wait: true, points: rawPoints }));
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

    return {
      qdrantUrl: options.url,
      storage: options.storage ?? 'unknown',
      points,
      rawUpsertPoints: rawWritten,
      batchSize,
      recallSamples,
      topK,
      recallP50Ms: percentile(recallMs, 50),
      recallP99Ms: percentile(recallMs, 99),
      rawRecallP50Ms: percentile(rawRecallMs, 50),
      rawRecallP99Ms: percentile(rawRecallMs, 99),
      retainPerS: Math.round(points / (retainMs / 1000)),
      rawUpsertPerS: Math.round(rawWritten / (rawUpsertMs / 1000)),
      totalSeconds: Number(((performance.now() - started) / 1000).toFixed(1)),
    };
  } finally {
    await client.deleteCollection(store.collection);
    await client.deleteCollection(rawCollection);
  }
}

async function main(): Promise<void> {
  let url = process.env.QDRANT_URL;
  let storage = 'external (QDRANT_URL)';
  let stop: () => Promise<void> = async () => undefined;
  if (!url) {
    // Imported only here: the exported benchmark function needs no test helper.
    const { startLocalQdrantServer } = await import('../test/helpers/qdrant-server');
    const onTmpfs = process.env.MEMORY_BENCH_STORAGE !== 'disk' && existsSync('/dev/shm');
    const storageDir = onTmpfs ? mkdtempSync('/dev/shm/pantheon-bench-qdrant-') : undefined;
    storage = onTmpfs ? 'tmpfs' : 'disk';
    const server = await startLocalQdrantServer({ storageDir });
    url = server.url;
    stop = async () => {
      await server.stop();
      if (storageDir) rmSync(storageDir, { recursive: true, force: true });
    };
  }
  try {
    const result = await runMemoryBenchmark({
      url,
      apiKey: process.env.QDRANT_API_KEY || undefined,
      storage,
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
