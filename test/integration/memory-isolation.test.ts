/**
 * Isolation by every read path the project offers: the store's recall and
 * project search (CLI), the Temporal activity, and the Python handle Ray tasks
 * use. Agent A of project X holds private and shared memory; agent B of X,
 * and every agent of project Y, must see none of A's private memory, and Y
 * nothing of X. Each "sees nothing" is paired with a reader that does see the
 * memory, so the test fails if the memory is simply not there.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import type { QdrantClient } from '@qdrant/js-client-rest';
import { createMemoryActivities } from '../../activities/memory/memory-activities';
import { createQdrantClient, MemoryStore } from '../../activities/memory/store';
import type { MemoryScope } from '../../core/schemas/memory';
import { REPO_ROOT, useQdrant, VENV_PYTHON, type QdrantEndpoint } from '../helpers/qdrant-server';

jest.setTimeout(60_000);

const prefix = `pantheon_memory_isolation_${randomBytes(4).toString('hex')}`;
const X_PRIVATE_OF_A = 'Vault combination for project X is 4417, known to agent A only.';
const X_SHARED = 'Project X office opens at nine; everyone on X may know this vault schedule.';
const Y_PRIVATE_OF_A = 'Agent A in project Y keeps its vault notes here.';
// A query close to every memory above, and a topK far above how many exist,
// so that anything a reader may see is returned.
const QUERY = 'vault combination project agent known notes office schedule';
const TOP_K = 100;

let endpoint: QdrantEndpoint;
let raw: QdrantClient;
let store: MemoryStore;

beforeAll(async () => {
  endpoint = await useQdrant();
  raw = createQdrantClient({ qdrantUrl: endpoint.url, qdrantApiKey: endpoint.apiKey });
  store = await MemoryStore.open({ client: raw, collectionPrefix: prefix });
  const provenance = { workflowId: 'wf-iso', stepId: 'learn', attempt: 1 };
  await store.retain({
    project: 'X',
    agent: 'A',
    pipeline: 'p',
    step: 'learn',
    provenance,
    memories: [
      { text: X_PRIVATE_OF_A, scope: 'private' },
      { text: X_SHARED, scope: 'shared' },
    ],
  });
  await store.retain({
    project: 'Y',
    agent: 'A',
    pipeline: 'p',
    step: 'learn',
    provenance,
    memories: [{ text: Y_PRIVATE_OF_A, scope: 'private' }],
  });
});

afterAll(async () => {
  if (store) await raw.deleteCollection(store.collection);
  await endpoint?.stop();
});

type Reader = { project: string; agent: string };

/** What each reader must see, of the three memories, by any path. */
const expectations: Array<[Reader, string[]]> = [
  [{ project: 'X', agent: 'A' }, [X_PRIVATE_OF_A, X_SHARED]],
  [{ project: 'X', agent: 'B' }, [X_SHARED]],
  [{ project: 'Y', agent: 'A' }, [Y_PRIVATE_OF_A]],
  [{ project: 'Y', agent: 'B' }, []],
  [{ project: 'Z', agent: 'A' }, []],
];

const sorted = (texts: string[]) => [...texts].sort();

/** Recall through the Python handle, in a fresh interpreter like a Ray task, from a step's memory context. */
function pythonRecall(reader: Reader, scopes: MemoryScope[] = ['shared', 'private']): string[] {
  const script = [
    'import json, sys',
    'from pantheon_runtime.memory import ScopedMemory',
    'r = json.load(sys.stdin)',
    'with ScopedMemory.from_context(r["context"]) as memory:',
    '    json.dump([hit.text for hit in memory.recall(r["query"], top_k=r["topK"])], sys.stdout)',
  ].join('\n');
  const result = spawnSync(VENV_PYTHON, ['-c', script], {
    input: JSON.stringify({
      context: { ...reader, scopes, qdrantUrl: endpoint.url, collectionPrefix: prefix },
      query: QUERY,
      topK: TOP_K,
    }),
    // The key reaches tasks through their environment, never through the context.
    env: {
      ...process.env,
      PYTHONPATH: path.join(REPO_ROOT, 'ray-tasks'),
      QDRANT_API_KEY: endpoint.apiKey ?? '',
    },
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(`python recall failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as string[];
}

describe.each(expectations)('reader %o', (reader, visible) => {
  it('recall returns exactly what it may see', async () => {
    const { memories } = await store.recall({ ...reader, query: QUERY, topK: TOP_K });
    expect(sorted(memories.map((m) => m.text))).toEqual(sorted(visible));
  });

  it('the recallMemory activity returns exactly what it may see', async () => {
    const { recallMemory } = createMemoryActivities(async () => store);
    const { memories } = await recallMemory({ ...reader, query: QUERY, topK: TOP_K });
    expect(sorted(memories.map((m) => m.text))).toEqual(sorted(visible));
  });

  it('project search (CLI) returns exactly what it may see, listed or ranked', async () => {
    const search = {
      project: reader.project,
      agent: reader.agent,
      scopes: ['shared', 'private'] as MemoryScope[],
      limit: TOP_K,
    };
    expect(sorted((await store.searchProject(search)).map((m) => m.text))).toEqual(sorted(visible));
    expect(sorted((await store.searchProject({ ...search, query: QUERY })).map((m) => m.text))).toEqual(
      sorted(visible),
    );
  });

  it('the Python handle returns exactly what it may see', () => {
    expect(sorted(pythonRecall(reader))).toEqual(sorted(visible));
  });
});

describe('scopes', () => {
  it('shared-only readers never get private memory, even their own', async () => {
    const { memories } = await store.recall({
      project: 'X',
      agent: 'A',
      query: QUERY,
      topK: TOP_K,
      scopes: ['shared'],
    });
    expect(memories.map((m) => m.text)).toEqual([X_SHARED]);
    expect(pythonRecall({ project: 'X', agent: 'A' }, ['shared'])).toEqual([X_SHARED]);
  });

  it('project search shows no private memory without naming the agent', async () => {
    expect((await store.searchProject({ project: 'X', limit: TOP_K })).map((m) => m.text)).toEqual([
      X_SHARED,
    ]);
  });

  it('the Python handle refuses scopes beyond those it was given', () => {
    const script = [
      'from pantheon_runtime.memory import ScopedMemory',
      'memory = ScopedMemory(project="X", agent="A", scopes=["shared"], url="http://127.0.0.1:1")',
      'try:',
      '    memory.recall("vault", scopes=["private"])',
      'except PermissionError as error:',
      '    print("refused:", error)',
    ].join('\n');
    const result = spawnSync(VENV_PYTHON, ['-c', script], {
      env: { ...process.env, PYTHONPATH: path.join(REPO_ROOT, 'ray-tasks') },
      encoding: 'utf8',
    });
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(
      /^refused: scopes \['private'\] are not within this handle's scopes \['shared'\]/,
    );
  });
});
