/**
 * Knowledge-graph memory (LightRAG on the memory server): facts one agent
 * retained come back as graph context to that agent only, a retried retain
 * stores nothing twice, and LightRAG's own LLM extraction (driven here by a
 * scripted LLM, tests only) stores entities a later recall returns.
 */
import { randomBytes } from 'node:crypto';
import { ingestGraphDocument, recallGraph } from '../../activities/memory/graph';
import { createQdrantClient, MemoryStore } from '../../activities/memory/store';
import { startLocalQdrantServer, useQdrant, type QdrantEndpoint } from '../helpers/qdrant-server';
import { startScriptedLlm, type ChatMessage } from '../helpers/scripted-llm';

jest.setTimeout(180_000);

let endpoint: QdrantEndpoint;
let store: MemoryStore;
const project = `graph-${randomBytes(4).toString('hex')}`;
const QUESTION = 'Who owns the company that sells us steel?';
const FACTS = {
  entities: [
    { name: 'Forgeworks', type: 'organization', description: 'Steel supplier in Lyon.' },
    { name: 'Mireille Dubois', type: 'person', description: 'Owner of Forgeworks since 2019.' },
  ],
  relations: [
    {
      source: 'Mireille Dubois',
      target: 'Forgeworks',
      description: 'Mireille Dubois owns Forgeworks.',
      keywords: 'owns',
    },
  ],
  sources: ['Forgeworks, our steel supplier in Lyon, is owned by Mireille Dubois.'],
};

beforeAll(async () => {
  endpoint = await useQdrant();
  store = await MemoryStore.open({
    client: createQdrantClient({ qdrantUrl: endpoint.url, qdrantApiKey: endpoint.apiKey }),
    collectionPrefix: `pantheon_memory_graph_${randomBytes(4).toString('hex')}`,
    server: { url: endpoint.url, apiKey: endpoint.apiKey },
  });
});

afterAll(async () => {
  await endpoint?.stop();
});

const provenance = { workflowId: 'wf-graph', stepId: 'learn', attempt: 1 };

test("facts an agent kept come back as its graph context, and as nobody else's", async () => {
  expect(
    await store.retainFacts({ project, agent: 'analyst', scope: 'private', provenance, facts: FACTS }),
  ).toEqual({ stored: true });

  const own = await store.openForAgent({
    project,
    agent: 'analyst',
    scopes: ['shared', 'private'],
    query: QUESTION,
  });
  expect(own.graph).toHaveLength(1);
  expect(own.graph[0]).toMatchObject({ scope: 'private' });
  expect(own.graph[0]?.context).toContain('Mireille Dubois owns Forgeworks.');
  expect(own.grant.token).toMatch(/^g1\./);

  const otherAgent = await store.openForAgent({
    project,
    agent: 'writer',
    scopes: ['shared', 'private'],
    query: QUESTION,
  });
  expect(otherAgent.graph).toEqual([]);
  const otherProject = await store.openForAgent({
    project: `${project}-other`,
    agent: 'analyst',
    scopes: ['shared', 'private'],
    query: QUESTION,
  });
  expect(otherProject.graph).toEqual([]);
});

test('a retried step retaining the same facts stores nothing twice', async () => {
  const input = { project, agent: 'retrier', scope: 'shared' as const, provenance, facts: FACTS };
  expect(await store.retainFacts(input)).toEqual({ stored: true });
  // The retry: same workflow, step and facts (a later attempt number does not matter).
  expect(await store.retainFacts({ ...input, provenance: { ...provenance, attempt: 2 } })).toEqual({
    stored: false,
  });
  const [context] = await recallGraph(
    { url: endpoint.url, apiKey: endpoint.apiKey },
    { project, agent: 'retrier', scopes: ['shared'], query: QUESTION },
  );
  expect(context?.context.split('Owner of Forgeworks since 2019.')).toHaveLength(2);
});

test('refuses malformed facts naming the field, and writes nothing', async () => {
  await expect(
    store.retainFacts({
      project,
      agent: 'malformed',
      scope: 'private',
      provenance,
      facts: { entities: [], relations: [{ source: 'A', target: '', description: 'x' }] },
    }),
  ).rejects.toMatchObject({
    name: 'MemoryInputError',
    message: expect.stringMatching(/facts\.relations(\.0|\[0\])\.target/),
  });
  const server = { url: endpoint.url, apiKey: endpoint.apiKey };
  expect(
    await recallGraph(server, { project, agent: 'malformed', scopes: ['private'], query: QUESTION }),
  ).toEqual([]);
});

test('LLM ingestion (a scripted LLM) stores entities a later recall returns', async () => {
  const DOCUMENT = 'Quarry Nine supplies granite to Atelier Bleu, a sculpture studio in Nantes.';
  const EXTRACTION = [
    'entity<|#|>Quarry Nine<|#|>organization<|#|>A granite quarry that supplies Atelier Bleu.',
    'entity<|#|>Atelier Bleu<|#|>organization<|#|>A sculpture studio in Nantes.',
    'relation<|#|>Quarry Nine<|#|>Atelier Bleu<|#|>supplies<|#|>Quarry Nine supplies granite to Atelier Bleu.',
    '<|COMPLETE|>',
  ].join('\n');
  // Extraction prompts carry the document; anything else LightRAG asks ends the extraction.
  const llm = await startScriptedLlm((messages: ChatMessage[]) =>
    messages.some((m) => m.content.includes(DOCUMENT)) && messages.length <= 2 ? EXTRACTION : '<|COMPLETE|>',
  );
  const server = await startLocalQdrantServer({
    extraArgs: ['--llm-url', llm.url, '--llm-model', 'scripted'],
  });
  try {
    const target = { url: server.url };
    const written = { project, agent: 'reader', scope: 'private' as const, key: 'doc-1', text: DOCUMENT };
    expect(await ingestGraphDocument(target, written)).toEqual({ stored: true });
    expect(llm.calls.length).toBeGreaterThan(0);
    const contexts = await recallGraph(target, {
      project,
      agent: 'reader',
      scopes: ['private'],
      query: 'Which quarry delivers stone to the Nantes studio?',
    });
    expect(contexts[0]?.context).toContain('Quarry Nine');
    expect(contexts[0]?.context).toContain('Atelier Bleu');
    // Without an LLM the server says so instead of ingesting.
    const refused = await ingestGraphDocument(
      { url: endpoint.url, apiKey: endpoint.apiKey },
      { ...written, key: 'doc-2' },
    )
      .then(() => undefined)
      .catch((error: Error) => error);
    expect(refused?.message).toMatch(/409.*needs an LLM/);
  } finally {
    await server.stop();
    await llm.close();
  }
});
