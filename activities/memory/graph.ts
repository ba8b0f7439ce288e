import { createHash } from 'node:crypto';
import { z } from 'zod';
import type { GraphContext, GraphFacts, MemoryScope } from '../../core/schemas/memory';

/**
 * Knowledge-graph memory through the memory server's LightRAG endpoints
 * (stack/qdrant-local/graph_api.py): one graph per project (shared) and per
 * agent (private), isolated by storage like the vector memory by filter.
 */
export interface GraphServer {
  url: string;
  apiKey?: string;
}

async function post<T>(server: GraphServer, route: string, body: unknown, schema: z.ZodType<T>): Promise<T> {
  const endpoint = `${server.url.replace(/\/+$/, '')}${route}`;
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(server.apiKey ? { 'api-key': server.apiKey } : {}) },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(120_000),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`memory server ${endpoint} answered ${response.status}: ${text}`);
  return z.object({ result: schema }).parse(JSON.parse(text)).result;
}

/**
 * The key of one write of facts: the same step (workflow and step id) writing
 * the same facts again, as a retried step does, gets the same key and the
 * server stores nothing twice.
 */
export function graphRetainKey(
  provenance: { workflowId: string; stepId: string },
  facts: GraphFacts,
): string {
  return createHash('sha256')
    .update(JSON.stringify([provenance.workflowId, provenance.stepId, facts]))
    .digest('hex');
}

export async function retainGraphFacts(
  server: GraphServer,
  input: {
    project: string;
    agent: string;
    scope: MemoryScope;
    provenance: { workflowId: string; stepId: string };
    facts: GraphFacts;
  },
): Promise<{ stored: boolean }> {
  return post(
    server,
    '/pantheon/graph/retain',
    {
      project: input.project,
      agent: input.agent,
      scope: input.scope,
      key: graphRetainKey(input.provenance, input.facts),
      entities: input.facts.entities,
      relations: input.facts.relations,
      sources: input.facts.sources,
    },
    z.object({ stored: z.boolean() }),
  );
}

/** LightRAG's context (entities, relations, source chunks) of the graphs a read may see. */
export async function recallGraph(
  server: GraphServer,
  input: { project: string; agent: string; scopes: MemoryScope[]; query: string },
): Promise<GraphContext[]> {
  const result = await post(
    server,
    '/pantheon/graph/recall',
    input,
    z.object({ contexts: z.array(z.object({ scope: z.enum(['shared', 'private']), context: z.string() })) }),
  );
  return result.contexts;
}

/** A document for LightRAG's LLM extraction; the memory server must have been given an LLM (--llm-url). */
export async function ingestGraphDocument(
  server: GraphServer,
  input: { project: string; agent: string; scope: MemoryScope; key: string; text: string },
): Promise<{ stored: boolean }> {
  return post(server, '/pantheon/graph/ingest', input, z.object({ stored: z.boolean() }));
}
