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
import { DEFAULT_ALLOWED_TASK_PACKAGES } from '../workflows/schemas/task-ref';

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
  PANTHEON_NODE_GROUPS: z.string().default(path.join(REPO_ROOT, 'config', 'node-groups.json')),
  PANTHEON_PYTHON: z.string().default(path.join(REPO_ROOT, '.venv', 'bin', 'python')),
  PANTHEON_RAY_TASKS_DIR: z.string().default(path.join(REPO_ROOT, 'ray-tasks')),
  /** Comma-separated Python packages whose functions steps may name. */
  PANTHEON_ALLOWED_TASK_PACKAGES: z
    .string()
    .default(DEFAULT_ALLOWED_TASK_PACKAGES.join(','))
    .transform((s) =>
      s
        .split(',')
        .map((p) => p.trim())
        .filter(Boolean),
    )
    .pipe(z.array(z.string().regex(/^[A-Za-z_][\w.]*$/, 'Python package names')).min(1)),
  /** Largest step output returned inline, in bytes; well under Temporal's 2 MB payload limit. */
  PANTHEON_MAX_RESULT_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(1_500_000)
    .default(256 * 1024),
  PANTHEON_STATUS_POLL_MS: z.coerce.number().int().min(100).default(1_000),
  PANTHEON_CANCEL_GRACE_MS: z.coerce.number().int().min(0).default(2_000),
  /** How often the worker reads Ray's node list to size its admission gate. */
  PANTHEON_CAPACITY_REFRESH_MS: z.coerce.number().int().min(100).default(1_000),
  LOG_LEVEL: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
});

export type WorkerConfig = ReturnType<typeof loadWorkerConfig>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

export function loadWorkerConfig(env: NodeJS.ProcessEnv = process.env) {
  const parsed = workerEnvSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`invalid environment variable ${issue?.path.join('.')}: ${issue?.message}`);
  }
  const e = parsed.data;
  const tlsFiles = e.TEMPORAL_TLS_CLIENT_CERT_PATH || e.TEMPORAL_TLS_CLIENT_KEY_PATH;
  if (tlsFiles && !(e.TEMPORAL_TLS_CLIENT_CERT_PATH && e.TEMPORAL_TLS_CLIENT_KEY_PATH))
    throw new ConfigError('TEMPORAL_TLS_CLIENT_CERT_PATH and TEMPORAL_TLS_CLIENT_KEY_PATH go together');
  const useTls = e.TEMPORAL_TLS || Boolean(tlsFiles) || Boolean(e.TEMPORAL_API_KEY);
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
    allowedTaskPackages: e.PANTHEON_ALLOWED_TASK_PACKAGES,
    maxResultBytes: e.PANTHEON_MAX_RESULT_BYTES,
    statusPollMs: e.PANTHEON_STATUS_POLL_MS,
    cancelGraceMs: e.PANTHEON_CANCEL_GRACE_MS,
    capacityRefreshMs: e.PANTHEON_CAPACITY_REFRESH_MS,
    logLevel: e.LOG_LEVEL,
  };
}
