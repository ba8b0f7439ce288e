/**
 * stack/qdrant-local/server.py: Qdrant's REST API over qdrant-client local
 * mode. These tests start their own servers (they stop, restart and lock
 * them), so they never touch the stack's Qdrant.
 */
import { spawnSync } from 'node:child_process';
import { QdrantClient } from '@qdrant/js-client-rest';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { memoryConfigFromEnv } from '../../activities/memory/config';
import { openMemoryStore } from '../../activities/memory/store';
import {
  REPO_ROOT,
  startLocalQdrantServer,
  VENV_PYTHON,
  type LocalQdrantServer,
} from '../helpers/qdrant-server';

jest.setTimeout(60_000);

const API_KEY = 'test-key-1234';
let server: LocalQdrantServer;
let client: QdrantClient;

beforeAll(async () => {
  server = await startLocalQdrantServer({ apiKey: API_KEY });
  // The key as a plain header: the client's `apiKey` option also works, but warns about http.
  client = new QdrantClient({ url: server.url, headers: { 'api-key': API_KEY }, checkCompatibility: false });
});

afterAll(async () => {
  await server?.stop();
});

async function call(method: string, route: string, body?: unknown, key: string | null = API_KEY) {
  const response = await fetch(`${server.url}${route}`, {
    method,
    headers: { 'content-type': 'application/json', ...(key === null ? {} : { 'api-key': key }) },
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.status, text, json: json as Record<string, unknown> | undefined };
}

const qdrantError = (message: string | RegExp) => ({
  status: { error: typeof message === 'string' ? message : expect.stringMatching(message) },
  time: expect.any(Number),
});

describe('service endpoints', () => {
  it('answers the version like Qdrant, without a key, compatible with the JS client', async () => {
    const { status, json } = await call('GET', '/', undefined, null);
    expect(status).toBe(200);
    expect(json).toMatchObject({
      title: 'qdrant - vector search engine',
      version: expect.stringMatching(/^1\.\d+\.\d+/),
    });
    const [, minor] = String(json?.version).split('.');
    expect(Math.abs(Number(minor) - 19)).toBeLessThanOrEqual(1);
  });

  it('is healthy on /healthz without a key', async () => {
    expect(await call('GET', '/healthz', undefined, null)).toMatchObject({
      status: 200,
      text: 'healthz check passed',
    });
  });

  it('requires the API key elsewhere: 401 without, 403 when wrong', async () => {
    expect(await call('GET', '/collections', undefined, null)).toMatchObject({
      status: 401,
      text: 'Must provide an API key or an Authorization bearer token',
    });
    expect((await call('GET', '/collections', undefined, 'wrong')).status).toBe(403);
    const bearer = await fetch(`${server.url}/collections`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    expect(bearer.status).toBe(200);
  });
});

describe('collections and points through @qdrant/js-client-rest', () => {
  it('create, exists, index, upsert, query, scroll, count, delete', async () => {
    const name = 'crud';
    expect(await client.collectionExists(name)).toEqual({ exists: false });
    expect(await client.createCollection(name, { vectors: { size: 3, distance: 'Cosine' } })).toBe(true);
    expect(await client.collectionExists(name)).toEqual({ exists: true });
    await client.createPayloadIndex(name, {
      field_name: 'project',
      field_schema: { type: 'keyword', is_tenant: true },
      wait: true,
    });
    await client.upsert(name, {
      wait: true,
      points: [
        { id: 1, vector: [1, 0, 0], payload: { project: 'x', n: 1 } },
        { id: 2, vector: [0, 1, 0], payload: { project: 'x', n: 2 } },
        { id: '5c56c793-69f3-4fbf-87e6-c4bf54c28c26', vector: [0, 0, 1], payload: { project: 'y', n: 3 } },
      ],
    });
    const filter = { must: [{ key: 'project', match: { value: 'x' } }] };
    const found = await client.query(name, { query: [0.9, 0.1, 0], filter, limit: 5, with_payload: true });
    expect(found.points.map((p) => p.id)).toEqual([1, 2]);
    expect(found.points[0]?.payload).toEqual({ project: 'x', n: 1 });
    // As on a Qdrant server, ordering needs a range index on the field.
    await expect(
      client.scroll(name, { filter, limit: 1, order_by: { key: 'n', direction: 'desc' } }),
    ).rejects.toMatchObject({
      status: 400,
    });
    await client.createPayloadIndex(name, {
      field_name: 'n',
      field_schema: { type: 'integer', lookup: true, range: true },
      wait: true,
    });
    const page = await client.scroll(name, { filter, limit: 1, order_by: { key: 'n', direction: 'desc' } });
    expect(page.points.map((p) => p.id)).toEqual([2]);
    expect(await client.count(name, { filter, exact: true })).toEqual({ count: 2 });
    await client.delete(name, { wait: true, points: [1] });
    await client.delete(name, { wait: true, filter: { must: [{ key: 'project', match: { value: 'y' } }] } });
    expect(await client.count(name, { exact: true })).toEqual({ count: 1 });
    const info = await client.getCollection(name);
    expect(info.config.params.vectors).toMatchObject({ size: 3, distance: 'Cosine' });
    // The engine's own payload indexes, reported as Qdrant reports them.
    expect(info.payload_schema?.project).toMatchObject({ data_type: 'keyword', params: { is_tenant: true } });
    expect(info.payload_schema?.n).toMatchObject({ data_type: 'integer', params: { range: true } });
    expect(await client.deleteCollection(name)).toBe(true);
    expect(await client.collectionExists(name)).toEqual({ exists: false });
  });
});

describe('with an API key', () => {
  it('serves the memory store with the key, and the Python handle through a grant, without it', async () => {
    const store = await openMemoryStore(
      memoryConfigFromEnv({
        QDRANT_URL: server.url,
        QDRANT_API_KEY: API_KEY,
        PANTHEON_MEMORY_COLLECTION_PREFIX: 'keyed',
      }),
    );
    await store.retain({
      project: 'acme',
      agent: 'a',
      pipeline: 'p',
      step: 's',
      provenance: { workflowId: 'w', stepId: 's', attempt: 1 },
      memories: [{ text: 'keys open the vault', scope: 'shared' }],
    });
    const grant = await store.issueReadGrant({ project: 'acme', agent: 'b', scopes: ['shared'] });
    const script = [
      'import json, sys',
      'from pantheon_runtime.memory import ScopedMemory',
      'memory = ScopedMemory.from_context(json.load(sys.stdin))',
      'print(json.dumps([hit.text for hit in memory.recall("vault keys")]))',
    ].join('\n');
    // A Ray task's environment: the memory server's URL, never the key.
    const run = (context: unknown) =>
      spawnSync(VENV_PYTHON, ['-c', script], {
        input: JSON.stringify(context),
        env: {
          ...process.env,
          PYTHONPATH: path.join(REPO_ROOT, 'ray-tasks'),
          PANTHEON_MEMORY_URL: server.url,
          QDRANT_API_KEY: '',
        },
        encoding: 'utf8',
      });
    const withGrant = run({ project: 'acme', agent: 'b', scopes: ['shared'], grant });
    expect(withGrant.stderr).toBe('');
    expect(JSON.parse(withGrant.stdout)).toEqual(['keys open the vault']);
    // Grants come only with the key: task code cannot mint its own.
    expect((await call('POST', '/pantheon/memory/grants', { project: 'acme' }, null)).status).toBe(401);
  });

  it('embeds through the embedder service, e5 with its query and passage prefixes, batched', async () => {
    const texts = [
      'The supplier in Lyon delivers steel beams late every winter.',
      'Our cafeteria serves pasta on Fridays.',
    ];
    const embed = async (input: string[], inputType: string) => {
      const response = await call('POST', '/v1/embeddings', { input, input_type: inputType }, null);
      expect(response.status).toBe(200);
      return (response.json?.data as { embedding: number[] }[]).map((d) => d.embedding);
    };
    const passages = await embed(texts, 'passage');
    const [query] = await embed(['Which vendor ships girders behind schedule in the cold months?'], 'query');
    expect(passages).toHaveLength(2);
    expect(passages[0]).toHaveLength(384);
    const dot = (a: number[], b: number[]) => a.reduce((sum, x, i) => sum + x * (b[i] ?? 0), 0);
    expect(dot(query!, passages[0]!)).toBeGreaterThan(dot(query!, passages[1]!));
    // The prefix matters: the same text as a query is not the same vector as a passage.
    const [asQuery] = await embed([texts[0]!], 'query');
    expect(dot(asQuery!, passages[0]!)).toBeLessThan(0.999);
  });
});

describe('errors, as Qdrant answers them', () => {
  beforeAll(async () => {
    await client.createCollection('errors', { vectors: { size: 3, distance: 'Cosine' } });
  });

  it('404 for an unknown collection', async () => {
    const response = await call('POST', '/collections/nope/points/count', {});
    expect(response.status).toBe(404);
    expect(response.json).toEqual(qdrantError("Not found: Collection `nope` doesn't exist!"));
  });

  it('409 for a collection that exists', async () => {
    const response = await call('PUT', '/collections/errors', { vectors: { size: 3, distance: 'Cosine' } });
    expect(response.status).toBe(409);
    expect(response.json).toEqual(qdrantError('Wrong input: Collection `errors` already exists!'));
  });

  it('400 for a vector of the wrong dimension, written or queried', async () => {
    const upsert = await call('PUT', '/collections/errors/points?wait=true', {
      points: [{ id: 1, vector: [1, 2] }],
    });
    expect(upsert.status).toBe(400);
    expect(upsert.json).toEqual(qdrantError(/^Wrong input: Vector dimension error: expected dim: 3, got 2/));
    const query = await call('POST', '/collections/errors/points/query', { query: [1, 2, 3, 4] });
    expect(query.status).toBe(400);
    expect(query.json).toEqual(qdrantError('Wrong input: Vector dimension error: expected dim: 3, got 4'));
    expect(await client.count('errors', { exact: true })).toEqual({ count: 0 });
  });

  it('400 for a body qdrant-client’s models refuse, naming the field', async () => {
    const unknownField = await call('POST', '/collections/errors/points/scroll', { limitt: 3 });
    expect(unknownField.status).toBe(400);
    expect(unknownField.json).toEqual(
      qdrantError(/^Format error in JSON body: limitt: Extra inputs are not permitted/),
    );
    const badDistance = await call('PUT', '/collections/other', {
      vectors: { size: 3, distance: 'Manhattan2' },
    });
    expect(badDistance.status).toBe(400);
    expect(badDistance.json).toEqual(qdrantError(/^Format error in JSON body: vectors\..*distance/));
    const notJson = await call('POST', '/collections/errors/points/count', '{"filter":');
    expect(notJson.status).toBe(400);
    expect(notJson.json).toEqual(qdrantError(/^Format error in JSON body/));
  });

  it('the JS client surfaces these as errors with the status', async () => {
    await expect(client.getCollection('nope')).rejects.toMatchObject({ status: 404 });
  });
});

describe('lifecycle', () => {
  it('keeps collections, points and indexes across a SIGTERM and a restart', async () => {
    const storageDir = mkdtempSync(path.join(tmpdir(), 'pantheon-qdrant-restart-'));
    try {
      const first = await startLocalQdrantServer({ storageDir });
      const firstClient = new QdrantClient({ url: first.url, checkCompatibility: false });
      await firstClient.createCollection('kept', { vectors: { size: 2, distance: 'Dot' } });
      await firstClient.createPayloadIndex('kept', {
        field_name: 'project',
        field_schema: { type: 'keyword', is_tenant: true },
        wait: true,
      });
      await firstClient.upsert('kept', {
        wait: true,
        points: [{ id: 7, vector: [1, 2], payload: { project: 'x' } }],
      });
      // Many more, in batches: a restart keeps every one of them.
      const many = Array.from({ length: 2000 }, (_, i) => ({
        id: 100 + i,
        vector: [i % 7, 1],
        payload: { project: `p${i % 9}` },
      }));
      for (let i = 0; i < many.length; i += 500) {
        await firstClient.upsert('kept', { wait: true, points: many.slice(i, i + 500) });
      }
      expect(await first.stopWith('SIGTERM')).toBe(0);
      expect(first.log()).toMatch(/stopped/);

      const second = await startLocalQdrantServer({ storageDir });
      const secondClient = new QdrantClient({ url: second.url, checkCompatibility: false });
      const points = await secondClient.scroll('kept', {
        filter: { must: [{ key: 'project', match: { value: 'x' } }] },
        with_payload: true,
        with_vector: true,
      });
      expect(points.points).toMatchObject([{ id: 7, payload: { project: 'x' }, vector: [1, 2] }]);
      expect(await secondClient.count('kept', { exact: true })).toEqual({ count: 2001 });
      const ids = new Set<unknown>();
      let offset: unknown = undefined;
      do {
        const page = await secondClient.scroll('kept', { limit: 500, offset: offset as number | undefined });
        page.points.forEach((p) => ids.add(p.id));
        offset = page.next_page_offset ?? undefined;
      } while (offset !== undefined);
      expect(ids.size).toBe(2001);
      expect((await secondClient.getCollection('kept')).payload_schema?.project).toMatchObject({
        params: { is_tenant: true },
      });
      expect(await second.stopWith('SIGTERM')).toBe(0);
    } finally {
      rmSync(storageDir, { recursive: true, force: true });
    }
  });

  it('refuses a storage directory another server holds, and says so', async () => {
    const blocked = startLocalQdrantServer({ storageDir: server.storageDir, keepStorage: true });
    await expect(blocked).rejects.toThrow(
      /exited with 1 before listening[\s\S]*already accessed by another instance/,
    );
  });

  it('prints nothing to stdout', async () => {
    const quiet = await startLocalQdrantServer();
    await fetch(`${quiet.url}/collections`);
    expect(await quiet.stopWith('SIGTERM')).toBe(0);
    expect(quiet.log()).toMatch(/listening[\s\S]*stopped/);
    expect(quiet.stdout()).toBe('');
  });
});
