/**
 * Where the local stack lives and listens. Every value can be changed by an
 * environment variable; the defaults are the documented contract
 * (Temporal 127.0.0.1:7233, Web UI 8233, Ray dashboard 8265, Qdrant 6333).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { nodeGroupsConfigSchema, type NodeGroupsConfig } from '../core/schemas/node-groups';
import { describeZodError } from '../core/issues';
import type { RAY_AUTH_ENV_KEYS } from './ray-auth';
import { defaultAllowedTaskModules } from '../core/schemas/task-ref';
import { explicitEnv } from './processes';

export const REPO_ROOT = path.resolve(__dirname, '..');

const port = z.coerce.number().int().min(1).max(65535);

const stackEnvSchema = z.object({
  PANTHEON_STATE_DIR: z.string().default(path.join(REPO_ROOT, '.state')),
  PANTHEON_NODE_GROUPS: z.string().default(path.join(REPO_ROOT, 'config', 'node-groups.json')),
  TEMPORAL_PORT: port.default(7233),
  TEMPORAL_UI_PORT: port.default(8233),
  RAY_HEAD_PORT: port.default(6379),
  RAY_DASHBOARD_PORT: port.default(8265),
  /**
   * Ray Client (`ray://`) server on the head: 0, the default, runs none. Nothing in the stack uses it
   * (workers and tasks reach the cluster through its GCS address) and its proxy process costs about
   * 90 MB; set a port to serve `ray://` clients of your own.
   */
  RAY_CLIENT_SERVER_PORT: z.coerce.number().int().min(0).max(65535).default(0),
  QDRANT_PORT: port.default(6333),
  /** The Web UI's codec server (stack/codec-server.ts): shows blob-store references decoded. */
  PANTHEON_CODEC_PORT: port.default(8234),
  /** Object store per Ray node, in MB: small, since steps pass JSON, not tensors. */
  RAY_OBJECT_STORE_MB: z.coerce.number().int().min(75).default(100),
});

export type StackConfig = ReturnType<typeof loadStackConfig>;

export function loadStackConfig(env: NodeJS.ProcessEnv = process.env) {
  const parsed = stackEnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new Error(`invalid stack setting ${describeZodError(parsed.error)}`);
  }
  const e = parsed.data;
  const stateDir = path.resolve(e.PANTHEON_STATE_DIR);
  return {
    stateDir,
    logDir: path.join(stateDir, 'logs'),
    pidDir: path.join(stateDir, 'pids'),
    nodeGroupsFile: path.resolve(e.PANTHEON_NODE_GROUPS),
    /** Step outputs too large for history, by content (ray-tasks/pantheon_runtime/blob_store.py). */
    blobDir: path.join(stateDir, 'blobs'),
    venvBin: path.join(REPO_ROOT, '.venv', 'bin'),
    rayTasksDir: path.join(REPO_ROOT, 'ray-tasks'),
    temporal: { port: e.TEMPORAL_PORT, uiPort: e.TEMPORAL_UI_PORT, address: `127.0.0.1:${e.TEMPORAL_PORT}` },
    ray: {
      headPort: e.RAY_HEAD_PORT,
      address: `127.0.0.1:${e.RAY_HEAD_PORT}`,
      dashboardPort: e.RAY_DASHBOARD_PORT,
      dashboardUrl: `http://127.0.0.1:${e.RAY_DASHBOARD_PORT}`,
      clientServerPort: e.RAY_CLIENT_SERVER_PORT,
      objectStoreBytes: e.RAY_OBJECT_STORE_MB * 1024 * 1024,
      // Unix socket paths under it must stay short, whatever the clone's path.
      tempDir: `/tmp/pantheon-ray-${e.RAY_HEAD_PORT}`,
      /** The stack's Ray token (stack/ray-auth.ts): created by `stack up`, read by every client. */
      authTokenPath: path.join(stateDir, 'ray-auth-token'),
    },
    qdrant: { port: e.QDRANT_PORT, url: `http://127.0.0.1:${e.QDRANT_PORT}` },
    codec: { port: e.PANTHEON_CODEC_PORT, url: `http://127.0.0.1:${e.PANTHEON_CODEC_PORT}` },
  };
}

export function loadNodeGroups(file: string): NodeGroupsConfig {
  const raw: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
  const parsed = nodeGroupsConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(`${file}: invalid ${describeZodError(parsed.error)}`);
  }
  return parsed.data;
}

/** The Qdrant agent memory lives in: QDRANT_URL when set (a real Qdrant), else the stack's own. */
export function memoryQdrantUrl(config: StackConfig): string {
  return process.env.QDRANT_URL || config.qdrant.url;
}

/**
 * What a Ray client of the local stack needs in its environment; entry points
 * that talk to the stack (tests' global setup, `npm start`, bench) put it there.
 * - Token authentication (stack/ray-auth.ts) is always on: loopback is shared
 *   with every user of the host.
 * - The stack's Ray nodes live on 127.0.0.1 (ray-tasks/pantheon_runtime/loopback_ray.py);
 *   with this setting off, `ray.init` keeps a 127.0.0.1 address rather than
 *   swapping in the host's routable one, where nothing of the stack listens.
 */
export function localRayClientEnv(
  config: StackConfig,
): Record<(typeof RAY_AUTH_ENV_KEYS)[number] | 'RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER', string> {
  return {
    RAY_AUTH_MODE: 'token',
    // RAY_AUTH_TOKEN would win over the file in Ray's lookup: empty, it is skipped.
    RAY_AUTH_TOKEN: '',
    RAY_AUTH_TOKEN_PATH: config.ray.authTokenPath,
    RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER: '0',
  };
}

/**
 * The memory server (embedder service, read grants, knowledge graphs):
 * PANTHEON_MEMORY_URL when set, else the stack's own, which also serves Qdrant's API.
 */
export function memoryServerUrl(config: StackConfig): string {
  return process.env.PANTHEON_MEMORY_URL || config.qdrant.url;
}

/** What the worker and the CLI add to the environment to reach the stack's memory. */
export function memoryEnv(config: StackConfig): { QDRANT_URL: string; PANTHEON_MEMORY_URL: string } {
  return { QDRANT_URL: memoryQdrantUrl(config), PANTHEON_MEMORY_URL: memoryServerUrl(config) };
}

/**
 * The environment every Ray process of the local stack gets (head, nodes, the dispatcher host), and
 * through them every Ray worker process and job: an explicit one, never the launcher's whole
 * environment (stack/processes.ts). Only the project's own settings for the Ray side are taken
 * from the launcher, by name.
 */
/**
 * The credentials of an S3-compatible blob store (a worker's PANTHEON_BLOB_URL) for the processes of
 * the local stack that read or write it (Ray nodes, the codec server), under the AWS SDKs' names.
 * Opt-in, by the project's own variables: the launcher's ambient AWS_* (a developer's own account)
 * never reach Ray, where any allowed task could read them.
 */
export const STACK_S3_ENV = {
  PANTHEON_S3_ENDPOINT: 'AWS_ENDPOINT_URL_S3',
  PANTHEON_S3_ACCESS_KEY_ID: 'AWS_ACCESS_KEY_ID',
  PANTHEON_S3_SECRET_ACCESS_KEY: 'AWS_SECRET_ACCESS_KEY',
  PANTHEON_S3_SESSION_TOKEN: 'AWS_SESSION_TOKEN',
  PANTHEON_S3_REGION: 'AWS_REGION',
} as const;

export function s3ClientEnv(from: NodeJS.ProcessEnv = process.env): Record<string, string | undefined> {
  return Object.fromEntries(Object.entries(STACK_S3_ENV).map(([own, aws]) => [aws, from[own]]));
}

export function rayProcessEnv(config: StackConfig, from: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  return explicitEnv(
    {
      ...localRayClientEnv(config),
      PYTHONPATH: config.rayTasksDir,
      RAY_USAGE_STATS_ENABLED: '0',
      // Temporal owns step retries; Ray must not retry OOM-killed tasks underneath it.
      RAY_task_oom_retries: '0',
      // A raylet waits this long for its node's dashboard agent to write its ports (default 60 s), then
      // aborts; on a loaded shared host the agent's imports alone have taken longer than that.
      RAY_agent_register_timeout_ms: '300000',
      // The Ray side's own task allowlist (ray-tasks/pantheon_runtime/task_refs.py): on the local
      // stack the test kit too, unless the launcher names another list.
      PANTHEON_ALLOWED_TASK_PACKAGES:
        from.PANTHEON_ALLOWED_TASK_PACKAGES || defaultAllowedTaskModules(true).join(','),
      // The dispatcher's output budget and where it spills beyond it (ray-tasks/pantheon_runtime/step_store.py).
      PANTHEON_DISPATCHER_OUTPUT_BUDGET_MB: from.PANTHEON_DISPATCHER_OUTPUT_BUDGET_MB,
      PANTHEON_DISPATCHER_SPILL_DIR: path.join(config.ray.tempDir, 'dispatcher-spill'),
      // How long a worker's admission lease outlives its last renewal (ray-tasks/pantheon_runtime/admission.py).
      PANTHEON_ADMISSION_LEASE_S: from.PANTHEON_ADMISSION_LEASE_S,
      // Agent tasks embed and read memory (ray-tasks/pantheon_runtime/memory.py) through the memory
      // server, only with the grants their steps carry: never the Qdrant URL or API key (docs/memory.md).
      PANTHEON_MEMORY_URL: memoryServerUrl(config),
      // Large step outputs: every node of this host writes and reads the same store (the CLI too).
      PANTHEON_BLOB_DIR: config.blobDir,
      PANTHEON_MAX_BLOB_BYTES: from.PANTHEON_MAX_BLOB_BYTES,
      // A worker may name an S3-compatible store instead (PANTHEON_BLOB_URL, sent with each step):
      // the credentials for it are the Ray side's.
      ...s3ClientEnv(from),
    },
    from,
  );
}
