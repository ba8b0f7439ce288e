/**
 * Ray's own view of its nodes, read from the dashboard's state API
 * (`GET /api/v0/nodes`). Used by the local stack, the capacity gate and the
 * tests that must assert on what Ray sees rather than on our bookkeeping.
 */
import { z } from 'zod';

const nodeSchema = z.object({
  node_id: z.string(),
  state: z.string(),
  is_head_node: z.boolean(),
  resources_total: z.record(z.string(), z.number()).default({}),
  labels: z.record(z.string(), z.string()).default({}),
  start_time_ms: z.number().optional(),
});

const responseSchema = z.object({
  result: z.boolean(),
  msg: z.string().optional(),
  data: z.object({ result: z.object({ result: z.array(nodeSchema) }) }),
});

export interface RayNode {
  nodeId: string;
  alive: boolean;
  isHead: boolean;
  resourcesTotal: Record<string, number>;
  labels: Record<string, string>;
}

export async function listRayNodes(dashboardUrl: string): Promise<RayNode[]> {
  const res = await fetch(`${dashboardUrl}/api/v0/nodes?limit=10000&detail=true`, {
    signal: AbortSignal.timeout(10_000),
  });
  if (!res.ok) throw new Error(`Ray state API answered HTTP ${res.status} for ${dashboardUrl}/api/v0/nodes`);
  const body = responseSchema.parse(await res.json());
  if (!body.result) throw new Error(`Ray state API error: ${body.msg ?? 'unknown'}`);
  return body.data.result.result.map((n) => ({
    nodeId: n.node_id,
    alive: n.state === 'ALIVE',
    isHead: n.is_head_node,
    resourcesTotal: n.resources_total,
    labels: n.labels,
  }));
}
