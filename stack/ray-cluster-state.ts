/**
 * Ray's own view of its nodes, read from the dashboard's state API
 * (`GET /api/v0/nodes`). Used by the local stack and the
 * tests that must assert on what Ray sees rather than on our bookkeeping.
 */
import { rayAuthHeaders } from './ray-auth';
import { z } from 'zod';
import { NODE_GROUP_LABEL } from '../core/schemas/node-groups';

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

/** `headers`: Ray's token, when the cluster wants one (stack/ray-auth.ts); by default from this process's environment. */
export async function listRayNodes(
  dashboardUrl: string,
  headers: Record<string, string> = rayAuthHeaders(),
): Promise<RayNode[]> {
  const res = await fetch(`${dashboardUrl}/api/v0/nodes?limit=10000&detail=true`, {
    headers,
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

/** The CPUs of a node group's alive Ray nodes (whole CPUs per node). */
export function groupCpuCapacity(nodes: readonly RayNode[], group: string): number {
  return nodes
    .filter((n) => n.alive && n.labels[NODE_GROUP_LABEL] === group)
    .reduce((sum, n) => sum + Math.floor(n.resourcesTotal['CPU'] ?? 0), 0);
}

const taskSchema = z.object({
  task_id: z.string(),
  name: z.string(),
  state: z.string(),
  attempt_number: z.number().int().default(0),
  node_id: z.string().nullable().optional(),
  worker_pid: z.number().nullable().optional(),
  error_type: z.string().nullable().optional(),
  creation_time_ms: z.number().nullable().optional(),
  start_time_ms: z.number().nullable().optional(),
  end_time_ms: z.number().nullable().optional(),
  required_resources: z.record(z.string(), z.number()).nullable().optional(),
});

const tasksResponseSchema = z.object({
  result: z.boolean(),
  msg: z.string().optional(),
  data: z.object({ result: z.object({ result: z.array(taskSchema) }) }),
});

export interface RayTaskRecord {
  taskId: string;
  name: string;
  /** Ray's task state: PENDING_NODE_ASSIGNMENT, RUNNING, FINISHED, FAILED, ... */
  state: string;
  attempt: number;
  nodeId: string | null;
  workerPid: number | null;
  errorType: string | null;
  /** When the task was submitted to Ray, started running and ended (epoch ms; null: not yet). */
  createdAtMs: number | null;
  startedAtMs: number | null;
  endedAtMs: number | null;
  /** What the task asked Ray for ({CPU: 1, …}). */
  resources: Record<string, number>;
}

/** States in which a Ray task is over: it holds no worker and waits for none. */
export const RAY_TASK_FINAL_STATES: ReadonlySet<string> = new Set(['FINISHED', 'FAILED']);

/**
 * Ray's own record of the tasks with this name (`GET /api/v0/tasks`): the
 * dispatcher names every step's task after its key. Ray reports task events
 * about once a second, so a state change shows up here with that delay.
 */
export async function listRayTasksNamed(
  dashboardUrl: string,
  name: string,
  headers: Record<string, string> = rayAuthHeaders(),
): Promise<RayTaskRecord[]> {
  const query = new URLSearchParams({
    detail: 'true',
    limit: '10000',
    filter_keys: 'name',
    filter_predicates: '=',
    filter_values: name,
  });
  const res = await fetch(`${dashboardUrl}/api/v0/tasks?${query}`, {
    headers,
    signal: AbortSignal.timeout(10_000),
  });
  if (!res.ok) throw new Error(`Ray state API answered HTTP ${res.status} for ${dashboardUrl}/api/v0/tasks`);
  const body = tasksResponseSchema.parse(await res.json());
  if (!body.result) throw new Error(`Ray state API error: ${body.msg ?? 'unknown'}`);
  return body.data.result.result.map((t) => ({
    taskId: t.task_id,
    name: t.name,
    state: t.state,
    attempt: t.attempt_number,
    nodeId: t.node_id ?? null,
    workerPid: t.worker_pid ?? null,
    errorType: t.error_type ?? null,
    createdAtMs: t.creation_time_ms ?? null,
    startedAtMs: t.start_time_ms ?? null,
    endedAtMs: t.end_time_ms ?? null,
    resources: t.required_resources ?? {},
  }));
}
