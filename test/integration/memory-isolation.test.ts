/**
 * Isolation by every read path the project offers: the store's recall and
 * project search (CLI), the Temporal activity, and the Python handle Ray tasks
 * use (through a read grant the memory server signed: the grant, not the
 * task, names project and agent). Agent A of project X holds private and shared memory; agent B of X,
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
import { waitUntil } from '../helpers/test-env';

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
  store = await MemoryStore.open({
    client: raw,
    collectionPrefix: prefix,
    server: { url: endpoint.url, apiKey: endpoint.apiKey },
  });
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

/** Runs a script in a fresh interpreter, like a Ray task: the memory server's URL in its environment, no API key. */
function runPython(script: string, input: unknown) {
  return spawnSync(VENV_PYTHON, ['-c', script], {
    input: JSON.stringify(input),
    env: {
      ...process.env,
      PYTHONPATH: path.join(REPO_ROOT, 'ray-tasks'),
      PANTHEON_MEMORY_URL: endpoint.url,
      QDRANT_API_KEY: '',
    },
    encoding: 'utf8',
  });
}

const RECALL_SCRIPT = [
  'import json, sys',
  'from pantheon_runtime.memory import ScopedMemory',
  'r = json.load(sys.stdin)',
  'with ScopedMemory.from_context(r["context"]) as memory:',
  '    json.dump([hit.text for hit in memory.recall(r["query"], top_k=r["topK"])], sys.stdout)',
].join('\n');

/** Recall through the Python handle from a step's memory context, as the agent host builds it. */
async function pythonRecall(
  reader: Reader,
  scopes: MemoryScope[] = ['shared', 'private'],
): Promise<string[]> {
  const grant = await store.issueReadGrant({ ...reader, scopes });
  const result = runPython(RECALL_SCRIPT, {
    context: { ...reader, scopes, recalled: [], grant },
    query: QUERY,
    topK: TOP_K,
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

  it('the Python handle returns exactly what it may see', async () => {
    expect(sorted(await pythonRecall(reader))).toEqual(sorted(visible));
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
    expect(await pythonRecall({ project: 'X', agent: 'A' }, ['shared'])).toEqual([X_SHARED]);
  });

  it('project search shows no private memory without naming the agent', async () => {
    expect((await store.searchProject({ project: 'X', limit: TOP_K })).map((m) => m.text)).toEqual([
      X_SHARED,
    ]);
  });

  it('the Python handle refuses scopes beyond those its grant gives', async () => {
    const grant = await store.issueReadGrant({ project: 'X', agent: 'A', scopes: ['shared'] });
    const script = [
      'import json, sys',
      'from pantheon_runtime.memory import ScopedMemory',
      'r = json.load(sys.stdin)',
      'memory = ScopedMemory.from_context(r)',
      'try:',
      '    memory.recall("vault", scopes=["private"])',
      'except PermissionError as error:',
      '    print("refused:", error)',
    ].join('\n');
    const result = runPython(script, { project: 'X', agent: 'A', scopes: ['shared'], grant });
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(
      /^refused: scopes \['private'\] are not within this handle's scopes \['shared'\]/,
    );
  });
});

describe('isolation carried by the grant (task code cannot change it)', () => {
  /** Calls the memory server's recall with a grant token as task code could. */
  const recallWith = (token: string, scopes?: MemoryScope[]) =>
    fetch(`${endpoint.url}/pantheon/memory/recall`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant: token, query: QUERY, topK: TOP_K, ...(scopes && { scopes }) }),
    });

  it('the handle has no way to name a project, an agent or a server', () => {
    const script = [
      'from pantheon_runtime.memory import ScopedMemory',
      'for kwargs in ({"project": "X"}, {"url": "http://127.0.0.1:1"}, {"agent": "A"}):',
      '    try:',
      '        ScopedMemory(**kwargs)',
      '    except TypeError as error:',
      '        print("refused")',
    ].join('\n');
    expect(runPython(script, {}).stdout).toBe('refused\nrefused\nrefused\n');
  });

  it('a context naming another project still reads with its grant: the grant decides', async () => {
    const grant = await store.issueReadGrant({ project: 'X', agent: 'B', scopes: ['shared', 'private'] });
    // Task code rewrote the project and agent it was given; the server ignores them.
    const result = runPython(RECALL_SCRIPT, {
      context: { project: 'Y', agent: 'A', scopes: ['shared', 'private'], recalled: [], grant },
      query: QUERY,
      topK: TOP_K,
    });
    expect(result.stderr).toBe('');
    expect(JSON.parse(result.stdout)).toEqual([X_SHARED]);
  });

  it('an altered grant is refused: widening it breaks its signature', async () => {
    const { token } = await store.issueReadGrant({ project: 'X', agent: 'B', scopes: ['shared'] });
    const [version, body, signature] = token.split('.');
    const claims = JSON.parse(Buffer.from(body!, 'base64url').toString('utf8')) as Record<string, unknown>;
    const widened = Buffer.from(JSON.stringify({ ...claims, agent: 'A', scopes: ['shared', 'private'] }))
      .toString('base64url')
      .replace(/=+$/, '');
    const forged = await recallWith(`${version}.${widened}.${signature}`, ['shared', 'private']);
    expect(forged.status).toBe(403);
    expect(await forged.text()).toMatch(/signature does not match/);
    // The genuine grant still works, and only for what it names.
    const genuine = await recallWith(token);
    expect(genuine.status).toBe(200);
    const asked = await recallWith(token, ['private']);
    expect(asked.status).toBe(403);
  });

  it('an expired grant is refused', async () => {
    const expired = await fetch(`${endpoint.url}/pantheon/memory/grants`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(endpoint.apiKey && { 'api-key': endpoint.apiKey }) },
      body: JSON.stringify({
        project: 'X',
        agent: 'A',
        scopes: ['shared'],
        collectionPrefix: prefix,
        embedder: 'hash-ngram-v1',
        expiresInSeconds: 1,
      }),
    });
    const { result } = (await expired.json()) as { result: { grant: string; expiresAt: number } };
    // The grant's expiry is whole seconds: wait until the server's clock has passed it.
    await waitUntil('the grant to expire', async () =>
      Date.now() / 1000 >= result.expiresAt + 1 ? true : undefined,
    );
    const answer = await recallWith(result.grant);
    expect(answer.status).toBe(403);
    expect(await answer.text()).toMatch(/expired/);
  });
});
