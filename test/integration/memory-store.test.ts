/**
 * The memory store against a real Qdrant REST endpoint: the stack's
 * (QDRANT_URL) or a local server of this file's own. Every store here uses a
 * collection prefix unique to this run, and drops its collections afterwards.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import type { QdrantClient } from '@qdrant/js-client-rest';
import { HashNgramEmbedder, type Embedder } from '../../activities/memory/embedder';
import { MemoryConfigError, MemoryInputError } from '../../activities/memory/errors';
import { ServiceEmbedder } from '../../activities/memory/service-embedder';
import { createMemoryActivities } from '../../activities/memory/memory-activities';
import {
  createQdrantClient,
  memoryCollectionName,
  MemoryStore,
  type MemoryStoreOptions,
} from '../../activities/memory/store';
import { MAX_MEMORY_TEXT_CHARS, type RetainMemoryInput } from '../../core/schemas/memory';
import { REPO_ROOT, useQdrant, VENV_PYTHON, type QdrantEndpoint } from '../helpers/qdrant-server';

jest.setTimeout(60_000);

const prefix = `pantheon_memory_test_${randomBytes(4).toString('hex')}`;
let endpoint: QdrantEndpoint;
let raw: QdrantClient;

beforeAll(async () => {
  endpoint = await useQdrant();
  raw = createQdrantClient({ qdrantUrl: endpoint.url, qdrantApiKey: endpoint.apiKey });
});

afterAll(async () => {
  if (raw) {
    const { collections } = await raw.getCollections();
    for (const { name } of collections) if (name.startsWith(prefix)) await raw.deleteCollection(name);
  }
  await endpoint?.stop();
});

/** A store on its own collection (`tag` keeps tests apart), with a clock the test moves. */
async function openStore(tag: string, options: Partial<MemoryStoreOptions> = {}) {
  const clock = { now: Date.parse('2026-01-01T00:00:00Z') };
  const store = await MemoryStore.open({
    client: raw,
    collectionPrefix: `${prefix}_${tag}`,
    now: () => clock.now,
    ...options,
  });
  return { store, clock };
}

function retainInput(overrides: Partial<RetainMemoryInput> = {}): RetainMemoryInput {
  return {
    project: 'acme',
    agent: 'researcher',
    pipeline: 'due-diligence',
    step: 'collect',
    provenance: { workflowId: 'wf-1', stepId: 'collect', attempt: 1 },
    memories: [{ text: 'The supplier in Rotterdam ships on Tuesdays.', scope: 'shared' }],
    ...overrides,
  };
}

async function pointCount(store: MemoryStore): Promise<number> {
  return (await raw.count(store.collection, { exact: true })).count;
}

describe('retain and recall', () => {
  it('recalls a memory within the pipeline that wrote it, with its provenance', async () => {
    const { store } = await openStore('recall');
    const { ids } = await store.retain(
      retainInput({
        memories: [
          {
            text: 'The supplier in Rotterdam ships on Tuesdays.',
            scope: 'shared',
            metadata: { source: 'email' },
          },
          { text: 'Quarterly marketing budget is 40k EUR.', scope: 'shared' },
        ],
      }),
    );
    const { memories } = await store.recall({
      project: 'acme',
      agent: 'researcher',
      query: 'when does the Rotterdam supplier ship?',
      topK: 2,
    });
    expect(memories.map((m) => m.id)).toEqual(ids);
    expect(memories[0]).toEqual({
      id: ids[0],
      text: 'The supplier in Rotterdam ships on Tuesdays.',
      scope: 'shared',
      project: 'acme',
      agent: 'researcher',
      pipeline: 'due-diligence',
      step: 'collect',
      createdAt: '2026-01-01T00:00:00.000Z',
      provenance: { workflowId: 'wf-1', stepId: 'collect', attempt: 1 },
      metadata: { source: 'email' },
      score: expect.any(Number),
    });
    expect(memories[0]!.score).toBeGreaterThan(memories[1]!.score);
  });

  it('recalls across pipelines of the project, or only from one pipeline when asked', async () => {
    const { store } = await openStore('pipelines');
    await store.retain(
      retainInput({
        pipeline: 'intake',
        memories: [{ text: 'Client prefers invoices in PDF.', scope: 'shared' }],
      }),
    );
    const query = { project: 'acme', agent: 'writer', query: 'invoice format the client prefers' };
    expect((await store.recall(query)).memories.map((m) => m.text)).toEqual([
      'Client prefers invoices in PDF.',
    ]);
    expect((await store.recall({ ...query, pipeline: 'intake' })).memories).toHaveLength(1);
    expect((await store.recall({ ...query, pipeline: 'billing' })).memories).toEqual([]);
  });

  it('keeps private memory for the agent that wrote it', async () => {
    const { store } = await openStore('private');
    await store.retain(
      retainInput({ memories: [{ text: 'My draft outline has five sections.', scope: 'private' }] }),
    );
    const query = { query: 'draft outline sections', project: 'acme' };
    expect((await store.recall({ ...query, agent: 'researcher' })).memories).toHaveLength(1);
    expect((await store.recall({ ...query, agent: 'researcher', scopes: ['shared'] })).memories).toEqual([]);
    expect((await store.recall({ ...query, agent: 'writer' })).memories).toEqual([]);
  });

  it('drops matches below minScore', async () => {
    const { store } = await openStore('minscore');
    await store.retain(retainInput());
    const query = { project: 'acme', agent: 'researcher', query: 'Rotterdam supplier ships Tuesdays' };
    expect((await store.recall({ ...query, minScore: 0.3 })).memories).toHaveLength(1);
    expect((await store.recall({ ...query, minScore: 0.99 })).memories).toEqual([]);
  });
});

describe('idempotent retries', () => {
  it('leaves one point when a step is retried three times', async () => {
    const { store, clock } = await openStore('retries');
    const results = [];
    for (const attempt of [1, 2, 3]) {
      clock.now += 1000;
      results.push(
        await store.retain(retainInput({ provenance: { workflowId: 'wf-9', stepId: 'collect', attempt } })),
      );
    }
    expect(new Set(results.map((r) => r.ids[0])).size).toBe(1);
    expect(await pointCount(store)).toBe(1);
    const { memories } = await store.recall({
      project: 'acme',
      agent: 'researcher',
      query: 'supplier Rotterdam',
    });
    expect(memories.map((m) => m.provenance.attempt)).toEqual([3]);
  });

  it('keeps the same text written by another step as another memory', async () => {
    const { store } = await openStore('other-step');
    await store.retain(retainInput());
    await store.retain(retainInput({ provenance: { workflowId: 'wf-2', stepId: 'collect', attempt: 1 } }));
    expect(await pointCount(store)).toBe(2);
  });
});

describe('forget', () => {
  it('deletes by agent, by pipeline and by project, never beyond the project', async () => {
    const { store } = await openStore('forget');
    const write = (project: string, agent: string, pipeline: string, text: string) =>
      store.retain(
        retainInput({
          project,
          agent,
          pipeline,
          memories: [
            { text, scope: 'shared' },
            { text, scope: 'private' },
          ],
        }),
      );
    await write('acme', 'researcher', 'intake', 'alpha fact');
    await write('acme', 'writer', 'intake', 'beta fact');
    await write('acme', 'writer', 'billing', 'gamma fact');
    await write('globex', 'researcher', 'intake', 'delta fact');
    expect(await pointCount(store)).toBe(8);

    expect(await store.forget({ project: 'acme', agent: 'researcher' })).toEqual({ deleted: 2 });
    expect(await store.forget({ project: 'acme', pipeline: 'intake' })).toEqual({ deleted: 2 });
    expect(await store.forget({ project: 'acme', scope: 'private' })).toEqual({ deleted: 1 });
    const left = await store.searchProject({ project: 'acme', scopes: ['shared'] });
    expect(left.map((m) => m.text)).toEqual(['gamma fact']);
    expect(await store.forget({ project: 'acme' })).toEqual({ deleted: 1 });
    expect(await store.forget({ project: 'acme' })).toEqual({ deleted: 0 });
    // The other project is untouched by all of it.
    expect(await pointCount(store)).toBe(2);
  });
});

describe('retention', () => {
  it('keeps at most maxPointsPerAgent per agent, dropping the oldest', async () => {
    const { store, clock } = await openStore('max', { retention: { maxPointsPerAgent: 3 } });
    for (let i = 1; i <= 5; i++) {
      clock.now += 1000;
      await store.retain(
        retainInput({
          step: `s${i}`,
          memories: [{ text: `observation number ${i}`, scope: i % 2 ? 'shared' : 'private' }],
        }),
      );
    }
    await store.retain(
      retainInput({ agent: 'writer', memories: [{ text: 'writer note', scope: 'shared' }] }),
    );
    const researcher = await store.searchProject({
      project: 'acme',
      scopes: ['shared', 'private'],
      agent: 'researcher',
    });
    // shared from both agents, private only of the researcher: the researcher's newest three plus the writer's note
    expect(researcher.map((m) => m.text).sort()).toEqual([
      'observation number 3',
      'observation number 4',
      'observation number 5',
      'writer note',
    ]);
    expect(await pointCount(store)).toBe(4);
  });

  it('never returns expired memories, and deletes them', async () => {
    const { store, clock } = await openStore('ttl', { retention: { ttlMs: 60_000 } });
    await store.retain(retainInput());
    const query = { project: 'acme', agent: 'researcher', query: 'Rotterdam supplier' };
    clock.now += 59_000;
    expect((await store.recall(query)).memories).toHaveLength(1);
    clock.now += 2_000;
    // Expired but not yet swept: stored, and still never returned.
    expect(await pointCount(store)).toBe(1);
    expect((await store.recall(query)).memories).toEqual([]);
    expect(await store.searchProject({ project: 'acme' })).toEqual([]);
    // The next write to the project sweeps it.
    await store.retain(retainInput({ memories: [{ text: 'fresh fact', scope: 'shared' }] }));
    expect((await store.searchProject({ project: 'acme' })).map((m) => m.text)).toEqual(['fresh fact']);
    expect(await pointCount(store)).toBe(1);
  });

  it('the Python handle never returns expired memories either: the retention travels in its grant', async () => {
    const hourAgo = Date.now() - 3_600_000;
    const { store } = await openStore('ttl_python', { now: () => hourAgo });
    await store.retain(retainInput());
    const recallFromPython = async (ttlSeconds: number) => {
      // The worker's store, configured with this retention, issues the grant.
      const { store: worker } = await openStore('ttl_python', {
        retention: { ttlMs: ttlSeconds * 1000 },
        server: { url: endpoint.url, apiKey: endpoint.apiKey },
      });
      const grant = await worker.issueReadGrant({ project: 'acme', agent: 'researcher', scopes: ['shared'] });
      const script = [
        'import json, sys',
        'from pantheon_runtime.memory import ScopedMemory',
        'memory = ScopedMemory.from_context(json.load(sys.stdin))',
        'json.dump([hit.text for hit in memory.recall("Rotterdam supplier")], sys.stdout)',
      ].join('\n');
      const result = spawnSync(VENV_PYTHON, ['-c', script], {
        input: JSON.stringify({ project: 'acme', agent: 'researcher', scopes: ['shared'], grant }),
        env: {
          ...process.env,
          PYTHONPATH: path.join(REPO_ROOT, 'ray-tasks'),
          PANTHEON_MEMORY_URL: endpoint.url,
        },
        encoding: 'utf8',
      });
      if (result.status !== 0) throw new Error(result.stderr);
      return JSON.parse(result.stdout) as string[];
    };
    expect(await recallFromPython(7200)).toEqual(['The supplier in Rotterdam ships on Tuesdays.']);
    expect(await recallFromPython(1800)).toEqual([]);
  });
});

describe('refusals write nothing', () => {
  it.each([
    ['empty text', { text: '', scope: 'shared' }, 'memories[1].text'],
    ['oversize text', { text: 'x'.repeat(MAX_MEMORY_TEXT_CHARS + 1), scope: 'shared' }, 'memories[1].text'],
    ['unknown scope', { text: 'fine text', scope: 'public' }, 'memories[1].scope'],
  ])('%s', async (_label, badMemory, path) => {
    const { store } = await openStore('refusals');
    const before = await pointCount(store);
    const input = retainInput({ memories: [{ text: 'a good memory', scope: 'shared' }, badMemory as never] });
    const refusal = store.retain(input);
    await expect(refusal).rejects.toBeInstanceOf(MemoryInputError);
    await expect(refusal).rejects.toMatchObject({ issues: [expect.objectContaining({ path })] });
    expect(await pointCount(store)).toBe(before);
  });

  it('refuses a collection whose dimension differs from the embedder', async () => {
    const name = memoryCollectionName(`${prefix}_mismatch`, new HashNgramEmbedder());
    await raw.createCollection(name, { vectors: { size: 16, distance: 'Cosine' } });
    const opening = openStore('mismatch');
    await expect(opening).rejects.toBeInstanceOf(MemoryConfigError);
    await expect(opening).rejects.toThrow(/dimension 16.*hash-ngram-v1 produces 384/);
    expect((await raw.count(name, { exact: true })).count).toBe(0);
  });

  it('refuses vectors of the wrong dimension from an embedder, writing nothing', async () => {
    const shortByOne: Embedder = {
      name: 'short-by-one',
      dimension: 8,
      embed: async (texts) => texts.map(() => [1, 0, 0, 0, 0, 0, 0]),
    };
    const { store } = await openStore('wrongdim', { embedder: shortByOne });
    await expect(store.retain(retainInput())).rejects.toThrow(
      /dimension 7 for memories\.0\.text.*holds dimension 8/,
    );
    await expect(store.recall({ project: 'acme', agent: 'a', query: 'x' })).rejects.toBeInstanceOf(
      MemoryConfigError,
    );
    expect(await pointCount(store)).toBe(0);
  });
});

describe('Temporal activities', () => {
  it('retain, recall and forget through the activity functions', async () => {
    const { store } = await openStore('activities');
    const activities = createMemoryActivities(async () => store);
    const { ids } = await activities.retainMemory(retainInput());
    const recalled = await activities.recallMemory({
      project: 'acme',
      agent: 'researcher',
      query: 'Rotterdam supplier',
    });
    expect(recalled.memories.map((m) => m.id)).toEqual(ids);
    expect(await activities.forgetMemory({ project: 'acme' })).toEqual({ deleted: 1 });
  });

  it('fails bad input non-retryably, naming the field', async () => {
    const { store } = await openStore('activities-bad');
    const activities = createMemoryActivities(async () => store);
    const failure = activities.retainMemory(retainInput({ memories: [{ text: ' ', scope: 'shared' }] }));
    await expect(failure).rejects.toBeInstanceOf(ApplicationFailure);
    await expect(failure).rejects.toMatchObject({
      type: 'MemoryInputError',
      nonRetryable: true,
      message: 'invalid retainMemory input: memories[0].text: must not be empty',
    });
    expect(await pointCount(store)).toBe(0);
  });

  it('fails a misconfigured store non-retryably', async () => {
    const activities = createMemoryActivities(async () => {
      throw new MemoryConfigError('collection holds vectors of dimension 16');
    });
    await expect(activities.recallMemory({ project: 'acme', agent: 'a', query: 'x' })).rejects.toMatchObject({
      type: 'MemoryConfigError',
      nonRetryable: true,
    });
  });
});

describe('searchProject (for the CLI)', () => {
  it('lists newest first without a query and ranks with one', async () => {
    const { store, clock } = await openStore('search');
    for (const text of ['first: supplier onboarding', 'second: invoice schedule', 'third: supplier audit']) {
      clock.now += 1000;
      await store.retain(retainInput({ step: text.split(':')[0]!, memories: [{ text, scope: 'shared' }] }));
    }
    expect((await store.searchProject({ project: 'acme' })).map((m) => m.text)).toEqual([
      'third: supplier audit',
      'second: invoice schedule',
      'first: supplier onboarding',
    ]);
    const ranked = await store.searchProject({ project: 'acme', query: 'invoice schedule', limit: 1 });
    expect(ranked.map((m) => m.text)).toEqual(['second: invoice schedule']);
    expect(ranked[0]!.score).toBeGreaterThan(0.5);
  });
});

describe('the collection', () => {
  it('is named after the embedder and its dimension, with the tenant index on project', async () => {
    const { store } = await openStore('indexes');
    expect(store.collection).toBe(`${prefix}_indexes__hash-ngram-v1__384`);
    const info = await raw.getCollection(store.collection);
    expect(info.payload_schema?.project?.params).toMatchObject({ type: 'keyword', is_tenant: true });
    expect(Object.keys(info.payload_schema ?? {}).sort()).toEqual([
      'agent',
      'createdAtMs',
      'pipeline',
      'project',
      'scope',
    ]);
    // createdAtMs is read by range and ordered by, never matched by value: no lookup index (memory).
    expect(info.payload_schema?.createdAtMs?.params).toMatchObject({
      type: 'integer',
      range: true,
      lookup: false,
    });
    // Opening again (another worker) neither fails nor duplicates anything.
    await expect(
      MemoryStore.open({ client: raw, collectionPrefix: `${prefix}_indexes` }),
    ).resolves.toBeInstanceOf(MemoryStore);
  });
});

describe('semantic recall (e5 through the embedder service)', () => {
  const MEMORY = 'Our accountant quit right after the audit.';
  // Shares no content word with MEMORY: only its meaning does.
  const PARAPHRASE = 'Which bookkeeper resigned following the financial inspection?';
  const DISTRACTORS = [
    'Our accountant bought a new car last spring.',
    'The cafeteria closes at noon on Fridays.',
    'The audit of the warehouse found missing pallets.',
    'Marketing hired two designers for the launch.',
  ];

  async function semanticStore() {
    const store = await MemoryStore.open({
      client: raw,
      collectionPrefix: `${prefix}_semantic`,
      embedder: new ServiceEmbedder({ url: endpoint.url, apiKey: endpoint.apiKey }),
      server: { url: endpoint.url, apiKey: endpoint.apiKey },
    });
    await store.retain(
      retainInput({
        memories: [MEMORY, ...DISTRACTORS].map((text) => ({ text, scope: 'shared' as const })),
      }),
    );
    return store;
  }

  it('a paraphrase sharing no content word recalls the memory first, through the recall activity', async () => {
    const store = await semanticStore();
    expect(store.collection).toBe(`${prefix}_semantic__e5-small-v1__384`);
    const { recallMemory } = createMemoryActivities(async () => store);
    const { memories } = await recallMemory({ project: 'acme', agent: 'researcher', query: PARAPHRASE });
    expect(memories[0]?.text).toBe(MEMORY);
  });

  it('and through the Python handle, which embeds with the same service', async () => {
    const store = await semanticStore();
    const grant = await store.issueReadGrant({ project: 'acme', agent: 'researcher', scopes: ['shared'] });
    const script = [
      'import json, sys',
      'from pantheon_runtime.memory import ScopedMemory',
      'r = json.load(sys.stdin)',
      'memory = ScopedMemory.from_context(r["context"])',
      'json.dump([hit.text for hit in memory.recall(r["query"], top_k=5)], sys.stdout)',
    ].join('\n');
    const result = spawnSync(VENV_PYTHON, ['-c', script], {
      input: JSON.stringify({
        context: { project: 'acme', agent: 'researcher', scopes: ['shared'], grant },
        query: PARAPHRASE,
      }),
      env: {
        ...process.env,
        PYTHONPATH: path.join(REPO_ROOT, 'ray-tasks'),
        PANTHEON_MEMORY_URL: endpoint.url,
      },
      encoding: 'utf8',
    });
    expect(result.stderr).toBe('');
    expect((JSON.parse(result.stdout) as string[])[0]).toBe(MEMORY);
  });

  it('keeps e5 vectors apart from hashing vectors: one collection per embedder', async () => {
    const semantic = await semanticStore();
    const lexical = await MemoryStore.open({ client: raw, collectionPrefix: `${prefix}_semantic` });
    expect(lexical.collection).toBe(`${prefix}_semantic__hash-ngram-v1__384`);
    expect(lexical.collection).not.toBe(semantic.collection);
    expect(
      (await lexical.recall({ project: 'acme', agent: 'researcher', query: PARAPHRASE })).memories,
    ).toEqual([]);
  });
});
