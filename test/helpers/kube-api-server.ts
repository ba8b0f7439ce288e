/**
 * A small stand-in for the Kubernetes API server, for testing the `kuberay`
 * node provider at its HTTP boundary: no Kubernetes API server can be
 * installed on these machines. It serves one RayCluster (GET, and PATCH with
 * JSON Patch) and the pods of that cluster (list by label selector), checks
 * every PATCH the way the API server and the RayCluster schema would for the
 * fields the provider touches, and answers a bad one as Kubernetes does: an
 * HTTP error carrying a `Status` object. `reconcile()` plays the KubeRay
 * operator's part for pods: it deletes the pods named in `workersToDelete` and
 * then brings each worker group to its replicas.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

const JSON_PATCH = 'application/json-patch+json';
const PATCH_OPS = new Set(['add', 'remove', 'replace', 'move', 'copy', 'test']);
/** The CRD's default for maxReplicas (int32 max). */
const DEFAULT_MAX_REPLICAS = 2_147_483_647;

/** JSON as parsed; the RayCluster is kept as plain JSON, like the API server keeps it. */
type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };

export interface FakePod {
  name: string;
  /** The KubeRay worker group (label `ray.io/group`). */
  group: string;
  phase: 'Pending' | 'Running';
  ip?: string;
  /** Set when deletion has begun (metadata.deletionTimestamp). */
  terminating?: boolean;
}

export interface RecordedRequest {
  method: string;
  path: string;
  contentType: string | undefined;
  body: unknown;
  status: number;
}

export interface FakeKubeApiServerOptions {
  namespace: string;
  /** The RayCluster object; metadata.name names it. */
  rayCluster: JsonObject;
  pods?: FakePod[];
  /** When set, every request must carry `Authorization: Bearer <token>`. */
  token?: string;
}

export interface FakeKubeApiServer {
  /** http://127.0.0.1:<port> */
  url: string;
  /** A copy of the RayCluster as stored now. */
  rayCluster(): JsonObject;
  pods: FakePod[];
  requests: RecordedRequest[];
  /** What the KubeRay operator would do with the current spec, done at once. */
  reconcile(): void;
  close(): Promise<void>;
}

class StatusError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly causes: Array<{ reason: string; message: string; field: string }> = [],
  ) {
    super(message);
  }
}

export async function startFakeKubeApiServer(options: FakeKubeApiServerOptions): Promise<FakeKubeApiServer> {
  const { namespace } = options;
  let cluster = structuredClone(options.rayCluster);
  const name = String((cluster.metadata as JsonObject | undefined)?.name ?? '');
  const clusterPath = `/apis/ray.io/v1/namespaces/${namespace}/rayclusters/${name}`;
  const podsPath = `/api/v1/namespaces/${namespace}/pods`;
  const requests: RecordedRequest[] = [];
  const state = { pods: options.pods ?? [], podCounter: 0 };

  const handle = (
    method: string,
    url: URL,
    headers: http.IncomingHttpHeaders,
    raw: string,
  ): [number, unknown] => {
    if (options.token !== undefined && headers.authorization !== `Bearer ${options.token}`) {
      throw new StatusError(401, 'Unauthorized', 'Unauthorized');
    }
    if (url.pathname === clusterPath && method === 'GET') return [200, cluster];
    if (url.pathname === clusterPath && method === 'PATCH') {
      cluster = patchRayCluster(cluster, name, headers['content-type'], raw);
      return [200, cluster];
    }
    if (url.pathname === podsPath && method === 'GET') {
      return [200, podList(state.pods, name, namespace, url.searchParams.get('labelSelector'))];
    }
    if (url.pathname === clusterPath || url.pathname === podsPath) {
      throw new StatusError(
        405,
        'MethodNotAllowed',
        `the server does not allow this method on the requested resource`,
      );
    }
    throw new StatusError(
      404,
      'NotFound',
      `the server could not find the requested resource (${url.pathname})`,
    );
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      const url = new URL(req.url ?? '/', 'http://localhost');
      let status: number;
      let payload: unknown;
      try {
        [status, payload] = handle(req.method ?? 'GET', url, req.headers, raw);
      } catch (error) {
        const e =
          error instanceof StatusError
            ? error
            : new StatusError(500, 'InternalError', (error as Error).message);
        status = e.code;
        payload = statusObject(e, name);
      }
      requests.push({
        method: req.method ?? '',
        path: url.pathname,
        contentType: req.headers['content-type'],
        body: parseOrRaw(raw),
        status,
      });
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(payload));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    rayCluster: () => structuredClone(cluster),
    get pods() {
      return state.pods;
    },
    set pods(pods: FakePod[]) {
      state.pods = pods;
    },
    requests,
    reconcile() {
      const groups = (((cluster.spec as JsonObject).workerGroupSpecs as JsonObject[] | undefined) ??
        []) as JsonObject[];
      for (const group of groups) {
        const groupName = String(group.groupName);
        const toDelete = new Set(
          ((group.scaleStrategy as JsonObject | undefined)?.workersToDelete as string[]) ?? [],
        );
        state.pods = state.pods.filter((p) => !(p.group === groupName && toDelete.has(p.name)));
        const replicas = typeof group.replicas === 'number' ? group.replicas : 0;
        const mine = state.pods.filter((p) => p.group === groupName);
        for (let i = mine.length; i < replicas; i++) {
          state.podCounter += 1;
          state.pods.push({
            name: `${name}-${groupName}-worker-${state.podCounter}`,
            group: groupName,
            phase: 'Pending',
          });
        }
        // Like KubeRay without named deletions: trims the newest pods.
        const extra = mine.length - replicas;
        if (extra > 0) {
          const trimmed = new Set(mine.slice(-extra).map((p) => p.name));
          state.pods = state.pods.filter((p) => !trimmed.has(p.name));
        }
      }
    },
    close: () => new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))),
  };
}

/** Checks and applies one PATCH; returns the new object or throws the Status the API server would answer with. */
function patchRayCluster(
  current: JsonObject,
  name: string,
  contentType: string | undefined,
  raw: string,
): JsonObject {
  const mediaType = (contentType ?? '').split(';')[0]?.trim().toLowerCase();
  if (mediaType !== JSON_PATCH) {
    // The real server accepts merge and strategic-merge patches too; the provider must send JSON Patch.
    throw new StatusError(
      415,
      'UnsupportedMediaType',
      `the body of the request was in an unknown format - accepted media types include: ${JSON_PATCH} (got ${contentType ?? 'none'})`,
    );
  }
  let operations: unknown;
  try {
    operations = JSON.parse(raw);
  } catch (error) {
    throw new StatusError(400, 'BadRequest', `error decoding patch: ${(error as Error).message}`);
  }
  if (!Array.isArray(operations)) throw invalid(name, 'patch', 'a JSON Patch must be an array of operations');
  const patched = structuredClone(current);
  const root = { doc: patched as Json };
  operations.forEach((operation: unknown, i: number) => applyOperation(root, operation, i, name));
  const result = root.doc as JsonObject;
  validateRayCluster(current, result, name);
  const metadata = result.metadata as JsonObject;
  metadata.resourceVersion = String(Number(metadata.resourceVersion ?? 0) + 1);
  metadata.generation = Number(metadata.generation ?? 1) + 1;
  return result;
}

function applyOperation(root: { doc: Json }, operation: unknown, index: number, name: string): void {
  const where = `patch[${index}]`;
  if (typeof operation !== 'object' || operation === null || Array.isArray(operation)) {
    throw invalid(name, where, 'each operation must be an object');
  }
  const op = operation as Record<string, unknown>;
  if (typeof op.op !== 'string' || !PATCH_OPS.has(op.op)) {
    throw invalid(
      name,
      `${where}.op`,
      `unknown op ${JSON.stringify(op.op)}; expected one of ${[...PATCH_OPS].join(', ')}`,
    );
  }
  const path = pointer(op.path, name, `${where}.path`);
  if (['add', 'replace', 'test'].includes(op.op) && !('value' in op)) {
    throw invalid(name, `${where}.value`, `op ${op.op} needs a value`);
  }
  const value = op.value as Json;
  const fail = (message: string) => invalid(name, where, `${op.op} ${String(op.path)}: ${message}`);
  switch (op.op) {
    case 'add':
      return add(root, path, structuredClone(value), fail);
    case 'remove':
      return void remove(root, path, fail);
    case 'replace':
      remove(root, path, fail);
      return add(root, path, structuredClone(value), fail);
    case 'test':
      if (JSON.stringify(canonical(get(root.doc, path, fail))) !== JSON.stringify(canonical(value))) {
        throw fail(`test failed: the value is ${JSON.stringify(get(root.doc, path, fail))}`);
      }
      return;
    default: {
      const from = pointer(op.from, name, `${where}.from`);
      const moved = op.op === 'move' ? remove(root, from, fail) : structuredClone(get(root.doc, from, fail));
      return add(root, path, moved, fail);
    }
  }
}

/** RFC 6901: "" is the whole document, otherwise "/" separated tokens with ~1 for "/" and ~0 for "~". */
function pointer(path: unknown, name: string, field: string): string[] {
  if (typeof path !== 'string' || (path !== '' && !path.startsWith('/'))) {
    throw invalid(name, field, `a JSON pointer must be "" or start with "/", got ${JSON.stringify(path)}`);
  }
  if (path === '') throw invalid(name, field, 'patching the whole object is not supported');
  return path
    .slice(1)
    .split('/')
    .map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function get(doc: Json, path: readonly string[], fail: (message: string) => Error): Json {
  let node: Json = doc;
  for (const token of path) {
    if (Array.isArray(node)) {
      const i = arrayIndex(token, node.length - 1, fail);
      node = node[i] as Json;
    } else if (node !== null && typeof node === 'object' && token in node) {
      node = node[token] as Json;
    } else {
      throw fail(`no such path (at "${token}")`);
    }
  }
  return node;
}

function add(
  root: { doc: Json },
  path: readonly string[],
  value: Json,
  fail: (message: string) => Error,
): void {
  const parent = get(root.doc, path.slice(0, -1), fail);
  const last = path[path.length - 1] as string;
  if (Array.isArray(parent)) {
    const i = last === '-' ? parent.length : arrayIndex(last, parent.length, fail);
    parent.splice(i, 0, value);
  } else if (parent !== null && typeof parent === 'object') {
    parent[last] = value;
  } else {
    throw fail('the parent is not an object or array');
  }
}

function remove(root: { doc: Json }, path: readonly string[], fail: (message: string) => Error): Json {
  const parent = get(root.doc, path.slice(0, -1), fail);
  const last = path[path.length - 1] as string;
  const value = get(parent, [last], fail);
  if (Array.isArray(parent)) parent.splice(arrayIndex(last, parent.length - 1, fail), 1);
  else delete (parent as JsonObject)[last];
  return value;
}

function arrayIndex(token: string, maxIndex: number, fail: (message: string) => Error): number {
  if (!/^(0|[1-9][0-9]*)$/.test(token)) throw fail(`"${token}" is not an array index`);
  const i = Number(token);
  if (i > maxIndex) throw fail(`index ${i} is out of range`);
  return i;
}

function canonical(value: Json): Json {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonical(value[k] as Json)]),
    );
  }
  return value;
}

/** The parts of the RayCluster schema (and KubeRay's validation) that the provider's patches touch. */
function validateRayCluster(before: JsonObject, after: JsonObject, name: string): void {
  const causes: Array<{ field: string; message: string; value?: Json }> = [];
  const beforeMeta = before.metadata as JsonObject;
  const afterMeta = after.metadata as JsonObject | undefined;
  if (after.apiVersion !== before.apiVersion || after.kind !== before.kind) {
    causes.push({ field: 'apiVersion', message: 'apiVersion and kind may not change' });
  }
  if (afterMeta?.name !== beforeMeta.name || afterMeta?.namespace !== beforeMeta.namespace) {
    causes.push({ field: 'metadata.name', message: 'field is immutable' });
  }
  const spec = after.spec as JsonObject | undefined;
  const groups = spec?.workerGroupSpecs;
  if (groups !== undefined && !Array.isArray(groups)) {
    causes.push({ field: 'spec.workerGroupSpecs', message: 'must be an array' });
  }
  (Array.isArray(groups) ? groups : []).forEach((group, i) => {
    const field = `spec.workerGroupSpecs[${i}]`;
    if (group === null || typeof group !== 'object' || Array.isArray(group)) {
      causes.push({ field, message: 'must be an object' });
      return;
    }
    if (typeof group.groupName !== 'string' || group.groupName === '') {
      causes.push({ field: `${field}.groupName`, message: 'Required value', value: group.groupName ?? null });
    }
    const intField = (key: string): number | undefined => {
      const v = group[key];
      if (v === undefined) return undefined;
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > DEFAULT_MAX_REPLICAS) {
        causes.push({
          field: `${field}.${key}`,
          message: 'must be an integer from 0 to 2147483647',
          value: v,
        });
        return undefined;
      }
      return v;
    };
    const replicas = intField('replicas');
    const min = intField('minReplicas') ?? 0;
    const max = intField('maxReplicas') ?? DEFAULT_MAX_REPLICAS;
    if (min > max)
      causes.push({
        field: `${field}.minReplicas`,
        message: `must be at most maxReplicas ${max}`,
        value: min,
      });
    if (replicas !== undefined && (replicas < min || replicas > max)) {
      causes.push({
        field: `${field}.replicas`,
        message: `must be within minReplicas ${min} and maxReplicas ${max}`,
        value: replicas,
      });
    }
    const strategy = group.scaleStrategy;
    if (strategy === undefined) return;
    if (strategy === null || typeof strategy !== 'object' || Array.isArray(strategy)) {
      causes.push({ field: `${field}.scaleStrategy`, message: 'must be an object', value: strategy });
      return;
    }
    for (const key of Object.keys(strategy)) {
      if (key !== 'workersToDelete')
        causes.push({ field: `${field}.scaleStrategy.${key}`, message: 'unknown field' });
    }
    const workers = strategy.workersToDelete;
    if (
      workers !== undefined &&
      (!Array.isArray(workers) || workers.some((w) => typeof w !== 'string' || w === ''))
    ) {
      causes.push({
        field: `${field}.scaleStrategy.workersToDelete`,
        message: 'must be an array of pod names',
        value: workers,
      });
    }
  });
  if (causes.length > 0) {
    const detail = causes
      .map(
        (c) =>
          `${c.field}: Invalid value: ${c.value === undefined ? '' : `${JSON.stringify(c.value)}: `}${c.message}`,
      )
      .join(', ');
    throw new StatusError(
      422,
      'Invalid',
      `RayCluster.ray.io "${name}" is invalid: ${detail}`,
      causes.map((c) => ({ reason: 'FieldValueInvalid', message: c.message, field: c.field })),
    );
  }
}

function invalid(name: string, field: string, message: string): StatusError {
  return new StatusError(422, 'Invalid', `RayCluster.ray.io "${name}" is invalid: ${field}: ${message}`, [
    { reason: 'FieldValueInvalid', message, field },
  ]);
}

function statusObject(error: StatusError, name: string): JsonObject {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: error.message,
    reason: error.reason,
    details: { name, group: 'ray.io', kind: 'rayclusters', causes: error.causes },
    code: error.code,
  };
}

function podList(
  pods: readonly FakePod[],
  cluster: string,
  namespace: string,
  selector: string | null,
): JsonObject {
  const wanted = (selector ?? '')
    .split(',')
    .filter((term) => term !== '')
    .map((term) => term.split('=') as [string, string]);
  const items = pods
    .map((pod) => {
      const labels: JsonObject = {
        'ray.io/cluster': cluster,
        'ray.io/group': pod.group,
        'ray.io/node-type': 'worker',
      };
      return { pod, labels };
    })
    .filter(({ labels }) => wanted.every(([key, value]) => labels[key] === value))
    .map(({ pod, labels }) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: pod.name,
        namespace,
        labels,
        ...(pod.terminating ? { deletionTimestamp: '2024-01-01T00:00:00Z' } : {}),
      },
      status: { phase: pod.phase, ...(pod.ip ? { podIP: pod.ip } : {}) },
    }));
  return { apiVersion: 'v1', kind: 'PodList', metadata: { resourceVersion: '1' }, items };
}

function parseOrRaw(raw: string): unknown {
  if (raw === '') return undefined;
  try {
    return JSON.parse(raw);
  } catch {
    return raw;
  }
}
