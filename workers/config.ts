/**
 * Worker configuration from the environment, validated with zod. Temporal
 * settings follow the SDK/CLI environment conventions (TEMPORAL_ADDRESS,
 * TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*), so one set of
 * variables points the worker, the CLI and `temporal workflow start` at the
 * same server — the local dev server by default, Temporal Cloud or a cluster
 * by configuration.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import { jobPolicySchema, DEFAULT_JOB_RUNTIME_ENV_KEYS, type JobPolicy } from '../core/schemas/job-policy';
import { defaultAllowedTaskModules, MODULE_NAME_PATTERN } from '../core/schemas/task-ref';
import { describeZodError } from '../core/issues';
import { HISTORY_LIMITS } from '../core/history-budget';
import { DEFAULT_BLOB_RETENTION_MS, retentionDurationSchema } from '../core/blob-retention';
import { blobStoreUrlSchema } from '../core/schemas/blob-ref';
import { isLoopbackHost, rayAddressHost, rayAuthToken } from '../stack/ray-auth';

const REPO_ROOT = path.resolve(__dirname, '..');

const booleanFlag = z
  .enum(['true', 'false', '1', '0', ''])
  .optional()
  .transform((v) => v === 'true' || v === '1');

const workerEnvSchema = z.object({
  TEMPORAL_ADDRESS: z.string().min(1).default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_API_KEY: z.string().min(1).optional(),
  TEMPORAL_TLS: booleanFlag,
  TEMPORAL_TLS_CLIENT_CERT_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_CLIENT_KEY_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_SERVER_CA_CERT_PATH: z.string().min(1).optional(),
  TEMPORAL_TLS_SERVER_NAME: z.string().min(1).optional(),
  RAY_ADDRESS: z.string().min(1).default('127.0.0.1:6379'),
  RAY_DASHBOARD_URL: z.string().url().default('http://127.0.0.1:8265'),
  /** Ray's own token authentication settings (stack/ray-auth.ts); Ray and this worker read the same ones. */
  RAY_AUTH_MODE: z.enum(['token', 'disabled', '']).optional(),
  RAY_AUTH_TOKEN: z.string().optional(),
  RAY_AUTH_TOKEN_PATH: z.string().optional(),
  /** Opt-in to talk to a Ray beyond loopback that takes no token (anyone who reaches it can run code on it). */
  PANTHEON_ALLOW_UNAUTHENTICATED_RAY: booleanFlag,
  PANTHEON_NODE_GROUPS: z.string().default(path.join(REPO_ROOT, 'config', 'node-groups.json')),
  PANTHEON_PYTHON: z.string().default(path.join(REPO_ROOT, '.venv', 'bin', 'python')),
  PANTHEON_RAY_TASKS_DIR: z.string().default(path.join(REPO_ROOT, 'ray-tasks')),
  /**
   * Comma-separated Python packages or modules whose public functions steps may name; unset: the
   * example agents, plus the test kit when Ray is on loopback (core/schemas/task-ref.ts).
   */
  PANTHEON_ALLOWED_TASK_PACKAGES: z
    .string()
    .optional()
    .transform((s) =>
      s === undefined
        ? undefined
        : s
            .split(',')
            .map((p) => p.trim())
            .filter(Boolean),
    )
    .pipe(
      z
        .array(z.string().regex(MODULE_NAME_PATTERN, 'public Python package or module names'))
        .min(1)
        .optional(),
    ),
  /**
   * Job mode is off unless this lists the entrypoints steps may run: a JSON array of regular
   * expressions, each matched against the whole entrypoint (core/schemas/job-policy.ts).
   */
  PANTHEON_JOB_ENTRYPOINTS: z.string().min(1).optional(),
  /** The runtime_env fields a job step may set (comma-separated). */
  PANTHEON_JOB_RUNTIME_ENV_KEYS: z.string().default(DEFAULT_JOB_RUNTIME_ENV_KEYS.join(',')),
  /** How often the worker releases the dispatcher's entries of closed workflows (activities/ray/dispatcher-retention.ts). */
  PANTHEON_DISPATCHER_SWEEP_MS: z.coerce.number().int().min(1_000).default(300_000),
  /**
   * Largest step output returned inline, in bytes. Never above what a pipeline's history budget
   * reserves for one output (core/history-budget.ts): a larger one could push a run past 50 MB.
   */
  PANTHEON_MAX_RESULT_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(HISTORY_LIMITS.maxStepOutputBytes)
    .default(HISTORY_LIMITS.maxStepOutputBytes),
  /**
   * A step output larger than this (as JSON) is kept in the Ray side's blob store and the step returns
   * a reference (ray-tasks/pantheon_runtime/blob_store.py); 0 keeps every output inline. Without a
   * store (PANTHEON_BLOB_URL here, or PANTHEON_BLOB_DIR on the Ray side) outputs stay inline up to
   * PANTHEON_MAX_RESULT_BYTES.
   */
  PANTHEON_BLOB_THRESHOLD_BYTES: z.coerce
    .number()
    .int()
    .min(0)
    .max(HISTORY_LIMITS.maxStepOutputBytes)
    .default(64 * 1024),
  /**
   * The blob store the Ray nodes write, when this worker sees it too: with PANTHEON_BLOB_SWEEP_MS the
   * worker removes what its retention allows (activities/ray/blob-retention.ts); unset, it never does.
   */
  PANTHEON_BLOB_DIR: z.string().min(1).optional(),
  /**
   * An S3-compatible store for this worker's large outputs (`s3://bucket/prefix`), for clusters whose
   * nodes share no disk: passed with each step, so the Ray side writes there (with the credentials of
   * its own environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL_S3…); unset, the
   * Ray side's directory (PANTHEON_BLOB_DIR of its nodes).
   */
  PANTHEON_BLOB_URL: z
    .string()
    .optional()
    .transform((s) => (s ? s : undefined))
    .pipe(blobStoreUrlSchema.optional()),
  /** How often the worker collects the blob store; unset: never (`pantheon blobs gc` does it by hand). */
  PANTHEON_BLOB_SWEEP_MS: z.coerce.number().int().min(1_000).optional(),
  /** How long after its last use an output no open workflow references is kept (core/blob-retention.ts). */
  PANTHEON_BLOB_RETENTION: z
    .string()
    .optional()
    .transform((s) => (s ? s : undefined))
    .pipe(retentionDurationSchema.optional()),
  PANTHEON_STATUS_POLL_MS: z.coerce.number().int().min(100).default(1_000),
  /** A step attempt still running after this long tells its pipeline it started (workers/step-start-notifier.ts). */
  PANTHEON_START_SIGNAL_DELAY_MS: z.coerce.number().int().min(0).default(500),
  PANTHEON_CANCEL_GRACE_MS: z.coerce.number().int().min(0).default(2_000),
  /** How a step is held to its memory request on its node (ray-tasks/pantheon_runtime/memory_guard.py). */
  PANTHEON_MEMORY_GUARD: z.enum(['auto', 'cgroup', 'rlimit', 'off']).default('auto'),
  /** The most memory a step is retried with after running out (one node of its group caps it too). */
  PANTHEON_MAX_STEP_MEMORY_MB: z.coerce.number().int().min(1).default(65_536),
  /** What a step that asked for no memory is retried with after running out. */
  PANTHEON_FIRST_OOM_MEMORY_MB: z.coerce.number().int().min(1).default(1_024),
  /** How much of the end of a Ray job's log goes into heartbeats and the step result. */
  PANTHEON_JOB_LOG_TAIL_BYTES: z.coerce
    .number()
    .int()
    .min(256)
    .max(HISTORY_LIMITS.maxJobLogTailBytes)
    .default(4_096),
  /** Serve Prometheus metrics at GET /metrics on this port (9464 is the convention); unset: off. */
  PANTHEON_METRICS_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  PANTHEON_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  /** The RayCluster that node groups with provider "kuberay" resize; unset: no kuberay provider. */
  PANTHEON_KUBERAY_CLUSTER: z.string().min(1).optional(),
  PANTHEON_KUBERAY_NAMESPACE: z.string().min(1).default('default'),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
});

export type WorkerConfig = ReturnType<typeof loadWorkerConfig>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/**
 * A Ray reachable beyond loopback without a token runs code for anyone who can
 * reach it (the ShadowRay class of attack), so the worker refuses to use one
 * unless told explicitly; with a token, the token must be there to read.
 */
function checkRayAuth(e: z.infer<typeof workerEnvSchema>, env: NodeJS.ProcessEnv): void {
  if (e.RAY_AUTH_MODE === 'token') {
    try {
      rayAuthToken(env);
    } catch (err) {
      throw new ConfigError(
        `RAY_AUTH_MODE=token but no Ray token could be read (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token): ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    return;
  }
  if (e.PANTHEON_ALLOW_UNAUTHENTICATED_RAY) return;
  const remote = [
    ['RAY_ADDRESS', rayAddressHost(e.RAY_ADDRESS)],
    ['RAY_DASHBOARD_URL', new URL(e.RAY_DASHBOARD_URL).hostname],
  ].find(([, host]) => host !== undefined && !isLoopbackHost(host));
  if (remote)
    throw new ConfigError(
      `${remote[0]} points at ${remote[1]}, beyond loopback, and Ray token authentication is off: ` +
        'set RAY_AUTH_MODE=token with RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH (docs/security.md), ' +
        'or PANTHEON_ALLOW_UNAUTHENTICATED_RAY=1 to accept a Ray that anyone who reaches it can run code on',
    );
}

export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env) {
  const parsed = workerEnvSchema.safeParse(env);
  if (!parsed.success) {
    throw new ConfigError(`invalid environment variable ${describeZodError(parsed.error)}`);
  }
  const e = parsed.data;
  const tlsFiles = e.TEMPORAL_TLS_CLIENT_CERT_PATH || e.TEMPORAL_TLS_CLIENT_KEY_PATH;
  if (tlsFiles && !(e.TEMPORAL_TLS_CLIENT_CERT_PATH && e.TEMPORAL_TLS_CLIENT_KEY_PATH))
    throw new ConfigError('TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH go together');
  const useTls = e.TEMPORAL_TLS || Boolean(tlsFiles) || Boolean(e.TEMPORAL_API_KEY);
  checkRayAuth(e, env);
  return {
    temporal: {
      address: e.TEMPORAL_ADDRESS,
      namespace: e.TEMPORAL_NAMESPACE,
      apiKey: e.TEMPORAL_API_KEY,
      tls: useTls
        ? {
            serverNameOverride: e.TEMPORAL_TLS_SERVER_NAME,
            serverRootCACertificate: e.TEMPORAL_TLS_SERVER_CA_CERT_PATH
              ? fs.readFileSync(e.TEMPORAL_TLS_SERVER_CA_CERT_PATH)
              : undefined,
            clientCertPair:
              e.TEMPORAL_TLS_CLIENT_CERT_PATH && e.TEMPORAL_TLS_CLIENT_KEY_PATH
                ? {
                    crt: fs.readFileSync(e.TEMPORAL_TLS_CLIENT_CERT_PATH),
                    key: fs.readFileSync(e.TEMPORAL_TLS_CLIENT_KEY_PATH),
                  }
                : undefined,
          }
        : undefined,
    },
    ray: { address: e.RAY_ADDRESS, dashboardUrl: e.RAY_DASHBOARD_URL.replace(/\/$/, '') },
    nodeGroupsFile: e.PANTHEON_NODE_GROUPS,
    python: e.PANTHEON_PYTHON,
    rayTasksDir: e.PANTHEON_RAY_TASKS_DIR,
    allowedTaskPackages:
      e.PANTHEON_ALLOWED_TASK_PACKAGES ?? defaultAllowedTaskModules(isLoopbackAddress(e.RAY_ADDRESS)),
    jobPolicy: parseJobPolicy(e.PANTHEON_JOB_ENTRYPOINTS, e.PANTHEON_JOB_RUNTIME_ENV_KEYS),
    dispatcherSweepMs: e.PANTHEON_DISPATCHER_SWEEP_MS,
    maxResultBytes: e.PANTHEON_MAX_RESULT_BYTES,
    blobThresholdBytes: e.PANTHEON_BLOB_THRESHOLD_BYTES,
    blobUrl: e.PANTHEON_BLOB_URL,
    blobRetention:
      (e.PANTHEON_BLOB_URL || e.PANTHEON_BLOB_DIR) && e.PANTHEON_BLOB_SWEEP_MS
        ? {
            store: { blobUrl: e.PANTHEON_BLOB_URL, blobDir: e.PANTHEON_BLOB_DIR },
            intervalMs: e.PANTHEON_BLOB_SWEEP_MS,
            retentionMs: e.PANTHEON_BLOB_RETENTION ?? DEFAULT_BLOB_RETENTION_MS,
          }
        : null,
    statusPollMs: e.PANTHEON_STATUS_POLL_MS,
    startSignalDelayMs: e.PANTHEON_START_SIGNAL_DELAY_MS,
    cancelGraceMs: e.PANTHEON_CANCEL_GRACE_MS,
    memoryGuard: e.PANTHEON_MEMORY_GUARD,
    maxStepMemoryMb: e.PANTHEON_MAX_STEP_MEMORY_MB,
    firstOomMemoryMb: e.PANTHEON_FIRST_OOM_MEMORY_MB,
    jobLogTailBytes: e.PANTHEON_JOB_LOG_TAIL_BYTES,
    metrics:
      e.PANTHEON_METRICS_PORT === undefined
        ? null
        : { port: e.PANTHEON_METRICS_PORT, host: e.PANTHEON_METRICS_HOST },
    kuberay: e.PANTHEON_KUBERAY_CLUSTER
      ? { clusterName: e.PANTHEON_KUBERAY_CLUSTER, namespace: e.PANTHEON_KUBERAY_NAMESPACE }
      : null,
    logLevel: e.LOG_LEVEL,
  };
}

/** Whether `host:port` names this machine's loopback: the local stack, not a real cluster. */
export function isLoopbackAddress(address: string): boolean {
  const host = address
    .replace(/^[a-z]+:\/\//, '')
    .replace(/:\d+$/, '')
    .replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** The operator's job policy from the environment; null (job mode off) when no entrypoint is listed. */
function parseJobPolicy(entrypoints: string | undefined, runtimeEnvKeys: string): JobPolicy | null {
  if (entrypoints === undefined) return null;
  let patterns: unknown;
  try {
    patterns = JSON.parse(entrypoints);
  } catch {
    throw new ConfigError(
      'invalid environment variable PANTHEON_JOB_ENTRYPOINTS: not a JSON array of regular expressions',
    );
  }
  const parsed = jobPolicySchema.safeParse({
    entrypoints: patterns,
    runtimeEnvKeys: runtimeEnvKeys
      .split(',')
      .map((k) => k.trim())
      .filter(Boolean),
  });
  if (!parsed.success)
    throw new ConfigError(
      `invalid job policy (PANTHEON_JOB_ENTRYPOINTS, PANTHEON_JOB_RUNTIME_ENV_KEYS): ${describeZodError(parsed.error)}`,
    );
  return parsed.data;
}
