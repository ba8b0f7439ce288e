/**
 * What the autoscaler reads of Ray and asks of it, through the worker's Python
 * bridge (ray-tasks/pantheon_runtime/cluster_ops.py): the GCS's view of every
 * live node (status, idle time, total and available resources, labels) and of
 * the requests no node has taken yet, and the drain of one node. The answers
 * are validated here, at the edge, so the rest of the code reads typed data.
 */
import { z } from 'zod';
import { describeZodError } from '../../core/issues';

/** The part of PythonHelper this module needs (a real bridge in the worker; nothing else). */
export interface BridgeCaller {
  call<T>(method: string, params?: unknown): Promise<T>;
}

const amounts = z.record(z.string(), z.number());

export const rayNodeStatusSchema = z.enum(['UNSPECIFIED', 'RUNNING', 'IDLE', 'DRAINING', 'DEAD']);

export const rayNodeStateSchema = z.object({
  nodeId: z.string().regex(/^[0-9a-f]{56}$/, 'a 56-character hex Ray node id'),
  instanceId: z.string(),
  address: z.string(),
  /** RUNNING: something runs on it; IDLE: nothing does; DRAINING: taking no new work. */
  status: rayNodeStatusSchema,
  /** How long the node has run nothing (0 while it runs something). */
  idleDurationMs: z.number().int().min(0),
  /** Ray's resource names (CPU, GPU, memory in bytes, custom); `node:*` bookkeeping left out. */
  total: amounts,
  available: amounts,
  labels: z.record(z.string(), z.string()),
  /** Why Ray thinks the node is busy, in its words. */
  activity: z.array(z.string()),
});

export const rayPendingRequestSchema = z.object({
  resources: amounts,
  /** The request's label selector as Ray holds it: `{key: "in(a)"}` or `{key: "!in(a,b)"}`. */
  labels: z.record(z.string(), z.string()),
  count: z.number().int().min(1),
});

export const rayClusterStateSchema = z.object({
  /** When the bridge read the state (epoch ms, the bridge host's clock). */
  readAtMs: z.number().int(),
  nodes: z.array(rayNodeStateSchema),
  /** Resource requests that wait for a node: Ray's own unmet demand. */
  pending: z.array(rayPendingRequestSchema),
});

export const drainAnswerSchema = z.object({
  accepted: z.boolean(),
  rejection: z.string().nullable(),
});

export type RayNodeState = z.infer<typeof rayNodeStateSchema>;
export type RayPendingRequest = z.infer<typeof rayPendingRequestSchema>;
export type RayClusterState = z.infer<typeof rayClusterStateSchema>;
export type DrainAnswer = z.infer<typeof drainAnswerSchema>;

function parseAnswer<T>(schema: z.ZodType<T>, method: string, raw: unknown): T {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(
      `Ray bridge answered ${method} with an unexpected shape: ${describeZodError(parsed.error)}`,
    );
  }
  return parsed.data;
}

export async function readRayClusterState(bridge: BridgeCaller): Promise<RayClusterState> {
  return parseAnswer(rayClusterStateSchema, 'node_states', await bridge.call('node_states', {}));
}

/**
 * Asks Ray to drain a node for idle termination. Ray refuses when the node runs
 * anything; once it accepts, the node takes no new work and its raylet stops.
 */
export async function drainRayNode(
  bridge: BridgeCaller,
  nodeId: string,
  message = 'idle: removed by the Pantheon autoscaler',
): Promise<DrainAnswer> {
  return parseAnswer(
    drainAnswerSchema,
    'drain_node',
    await bridge.call('drain_node', { nodeId, reason: 'idle', message }),
  );
}

/** A live node is one Ray may still place work on (or is about to): not draining, not dead. */
export function isSchedulable(node: RayNodeState): boolean {
  return node.status === 'RUNNING' || node.status === 'IDLE';
}
