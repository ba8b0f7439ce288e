/**
 * The local stack: Temporal dev server (SQLite file, Web UI), a Ray head with
 * its dashboard (Jobs API), Ray worker nodes per node group, and a local Qdrant.
 *
 * Entry point: scripts/stack.ts (`npm run stack:up|down|status`).
 *
 * `up` is idempotent and repairs what is broken: a service whose pid file
 * points at a live, healthy process is left alone; one that is dead is started
 * again, and one that is alive but does not answer is stopped and started
 * again. A Ray head that is (re)started takes a new cluster with it: the worker
 * nodes and the dispatcher host of the old one are stopped first (their raylets
 * would make `ray start --head` refuse: "Ray is trying to start at …, but is
 * already running") and started again against the new head. What happens to
 * the steps that were running is in docs/ray-execution.md ("When the Ray head
 * dies").
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import type { NodeGroup } from '../core/schemas/node-groups';
import {
  explicitEnv,
  freePort,
  isAlive,
  portOpen,
  spawnDetached,
  stopGroup,
  tailFile,
  waitFor,
} from './processes';
import {
  loadNodeGroups,
  loadStackConfig,
  rayProcessEnv,
  REPO_ROOT,
  s3ClientEnv,
  type StackConfig,
} from './config';
import { ensureTokenFile, rayAuthHeaders } from './ray-auth';
import { forgetDeadNodes, listLocalNodes, LOOPBACK_RAY, startLocalNode, stopLocalNode } from './ray-nodes';

const devServerConfigSchema = z.object({
  namespace: z.string(),
  searchAttributes: z.record(
    z.string(),
    z.enum(['Keyword', 'Text', 'Int', 'Double', 'Bool', 'Datetime', 'KeywordList']),
  ),
  dynamicConfig: z.record(z.string(), z.unknown()),
  /** `--sqlite-pragma` settings of the dev server's database (docs/temporal-dev-server.md). */
  sqlitePragmas: z.record(z.string(), z.string()).default({}),
});

type ServiceName = 'temporal' | 'ray-head' | 'qdrant' | 'dispatcher-host' | 'codec';

const log = (msg: string) => process.stderr.write(`[stack] ${msg}\n`);

function pidFile(config: StackConfig, name: ServiceName) {
  return path.join(config.pidDir, `${name}.pid`);
}

function runningPid(config: StackConfig, name: ServiceName): number | undefined {
  try {
    const pid = Number(fs.readFileSync(pidFile(config, name), 'utf8'));
    return pid > 0 && isAlive(pid) ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** What `startService` found: the service running and healthy (left alone), or started by it now. */
type ServiceOutcome = 'running' | 'started';

async function startService(
  config: StackConfig,
  name: ServiceName,
  command: string,
  args: string[],
  healthy: () => Promise<boolean>,
  ports: number[],
  env?: NodeJS.ProcessEnv,
  timeoutMs = 90_000,
  beforeStart: () => Promise<void> = async () => {},
): Promise<ServiceOutcome> {
  const existing = runningPid(config, name);
  if (existing !== undefined) {
    // One probe is not enough on a loaded host (or while the same process bundles workflows):
    // a healthy service gets a few seconds to answer before it is called unhealthy.
    const answered = await waitFor(
      `${name} to answer`,
      async () => ((await healthy()) ? true : undefined),
      15_000,
    )
      .then(() => true)
      .catch(() => false);
    if (answered) {
      log(`${name} already running (pid ${existing})`);
      return 'running';
    }
    log(`${name} runs (pid ${existing}) but does not answer: stopping it to start it again`);
    await stopGroup(existing, 10_000);
    fs.rmSync(pidFile(config, name), { force: true });
  }
  await beforeStart();
  // A port held by another process would make the health check answer for it.
  for (const port of ports)
    if (await portOpen(port))
      throw new Error(
        `${name}: port ${port} is already in use by another process (not this stack's; see PANTHEON_STATE_DIR)`,
      );
  const logFile = path.join(config.logDir, `${name}.log`);
  const proc = spawnDetached(command, args, { logFile, env, cwd: REPO_ROOT });
  fs.mkdirSync(config.pidDir, { recursive: true });
  fs.writeFileSync(pidFile(config, name), String(proc.pid));
  const started = Date.now();
  try {
    await waitFor(
      `${name} to become healthy`,
      async () => {
        if (!isAlive(proc.pid)) throw new Error(`${name} exited; see ${logFile}`);
        return (await healthy()) ? true : undefined;
      },
      timeoutMs,
    );
  } catch (err) {
    log(`${name} failed to start; last lines of ${logFile}:\n${tailFile(logFile)}`);
    await stopGroup(proc.pid, 5_000);
    fs.rmSync(pidFile(config, name), { force: true });
    throw err;
  }
  log(`${name} up in ${((Date.now() - started) / 1000).toFixed(1)} s (pid ${proc.pid})`);
  return 'started';
}

async function httpOk(url: string, headers: Record<string, string> = {}): Promise<boolean> {
  try {
    const res = await fetch(url, { headers, signal: AbortSignal.timeout(2_000) });
    return res.ok;
  } catch {
    return false;
  }
}

export async function startTemporal(config: StackConfig) {
  const dev = devServerConfigSchema.parse(
    JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'temporal-config', 'dev-server.json'), 'utf8')),
  );
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(config.temporal.port),
    '--ui-port',
    String(config.temporal.uiPort),
    '--db-filename',
    path.join(config.stateDir, 'temporal.db'),
    '--namespace',
    dev.namespace,
    '--log-level',
    'warn',
    '--ui-disable-news-fetch',
    // The Web UI asks the stack's codec server to show blob-store references decoded.
    '--ui-codec-endpoint',
    config.codec.url,
  ];
  for (const [name, type] of Object.entries(dev.searchAttributes))
    args.push('--search-attribute', `${name}=${type}`);
  for (const [pragma, value] of Object.entries(dev.sqlitePragmas))
    args.push('--sqlite-pragma', `${pragma}=${value}`);
  for (const [key, value] of Object.entries(dev.dynamicConfig))
    args.push('--dynamic-config-value', `${key}=${JSON.stringify(value)}`);
  await startService(
    config,
    'temporal',
    path.join(config.venvBin, 'temporal'),
    args,
    async () =>
      (await portOpen(config.temporal.port)) && (await httpOk(`http://127.0.0.1:${config.temporal.uiPort}/`)),
    [config.temporal.port, config.temporal.uiPort],
  );
}

/**
 * Before a Ray head starts, nothing of an earlier cluster may be left: its
 * worker nodes (their raylets name the old GCS, which makes `ray start --head`
 * refuse, and they cannot join a new head) and its dispatcher host (a driver of
 * the old cluster). Stopped quickly: without their GCS they have nothing to drain.
 */
async function clearEarlierCluster(config: StackConfig): Promise<void> {
  const nodes = listLocalNodes(config);
  const host = runningPid(config, 'dispatcher-host');
  if (nodes.length === 0 && host === undefined) return;
  log(
    `the Ray head is not running: stopping what was left of its cluster (${nodes.length} node(s)` +
      `${host === undefined ? '' : ' and the dispatcher host'})`,
  );
  await Promise.all(nodes.map((node) => stopLocalNode(config, node.name, 5_000)));
  if (host !== undefined) await stopGroup(host, 5_000);
  fs.rmSync(pidFile(config, 'dispatcher-host'), { force: true });
  forgetDeadNodes(config);
}

export async function startRayHead(config: StackConfig): Promise<ServiceOutcome> {
  // The head's dashboard agent serves the Jobs API's submissions; its default port (52365) is
  // taken by the first Ray head on the host, and without it every job submission is refused.
  const agentPort = await freePort();
  const args = [
    ...LOOPBACK_RAY,
    'start',
    '--head',
    '--node-ip-address',
    '127.0.0.1',
    '--port',
    String(config.ray.headPort),
    // Ray Client only on a port asked for (loopback_ray.py starts none without the flag).
    ...(config.ray.clientServerPort ? ['--ray-client-server-port', String(config.ray.clientServerPort)] : []),
    '--dashboard-host',
    '127.0.0.1',
    '--dashboard-port',
    String(config.ray.dashboardPort),
    '--dashboard-agent-listen-port',
    String(agentPort),
    '--include-dashboard',
    'true',
    // The head runs no steps: only the dispatcher actor, which asks for this resource.
    '--num-cpus',
    '0',
    '--resources',
    JSON.stringify({ pantheon_head: 1 }),
    '--object-store-memory',
    String(config.ray.objectStoreBytes),
    '--temp-dir',
    config.ray.tempDir,
    '--disable-usage-stats',
    '--block',
  ];
  return startService(
    config,
    'ray-head',
    path.join(config.venvBin, 'python'),
    args,
    () => httpOk(`${config.ray.dashboardUrl}/api/version`, rayAuthHeaders(rayProcessEnv(config))),
    [config.ray.headPort, config.ray.dashboardPort],
    rayProcessEnv(config),
    90_000,
    () => clearEarlierCluster(config),
  );
}

async function startQdrant(config: StackConfig) {
  await startService(
    config,
    'qdrant',
    path.join(config.venvBin, 'python'),
    [
      path.join(REPO_ROOT, 'stack', 'qdrant-local', 'server.py'),
      '--host',
      '127.0.0.1',
      '--port',
      String(config.qdrant.port),
      '--storage',
      path.join(config.stateDir, 'qdrant'),
    ],
    () => httpOk(`${config.qdrant.url}/healthz`),
    [config.qdrant.port],
  );
}

/** The Web UI's codec server (stack/codec-server.ts), on loopback, answering the UI's own origins. */
async function startCodec(config: StackConfig) {
  const uiPort = config.temporal.uiPort;
  await startService(
    config,
    'codec',
    process.execPath,
    ['--require', require.resolve('tsx/cjs'), path.join(REPO_ROOT, 'stack', 'codec-server.ts')],
    async () => {
      try {
        const res = await fetch(`${config.codec.url}/decode`, {
          method: 'POST',
          headers: { 'Content-Type': 'application/json' },
          body: '{"payloads":[]}',
          signal: AbortSignal.timeout(2_000),
        });
        return res.ok;
      } catch {
        return false;
      }
    },
    [config.codec.port],
    explicitEnv({
      PANTHEON_BLOB_DIR: config.blobDir,
      // The Web UI shows what the workers' store holds: an S3-compatible one when the launcher names it.
      PANTHEON_BLOB_URL: process.env.PANTHEON_BLOB_URL,
      ...s3ClientEnv(),
      PANTHEON_CODEC_PORT: String(config.codec.port),
      PANTHEON_CODEC_ORIGINS: `http://127.0.0.1:${uiPort},http://localhost:${uiPort}`,
      PANTHEON_CODEC_MAX_BLOB_BYTES: process.env.PANTHEON_CODEC_MAX_BLOB_BYTES,
    }),
  );
}

/**
 * The dispatcher's host (ray-tasks/pantheon_runtime/dispatcher_host.py): a
 * long-lived Ray driver that creates the dispatcher, so every step's task runs
 * under a job that stays alive and Ray reuses warm worker processes for it.
 * (Created by a worker's bridge instead, the dispatcher's job ends when that
 * worker stops, and from then on every step waits for a new worker process.)
 */
export async function startDispatcherHost(config: StackConfig) {
  const logFile = path.join(config.logDir, 'dispatcher-host.log');
  // Readiness is read from the log: a fresh start must not see an earlier run's line.
  if (runningPid(config, 'dispatcher-host') === undefined) fs.rmSync(logFile, { force: true });
  await startService(
    config,
    'dispatcher-host',
    path.join(config.venvBin, 'python'),
    ['-u', '-m', 'pantheon_runtime.dispatcher_host', '--address', config.ray.address],
    async () => {
      try {
        return fs.readFileSync(logFile, 'utf8').includes('dispatcher host ready');
      } catch {
        return false;
      }
    },
    [],
    rayProcessEnv(config),
  );
}

/**
 * A raylet on a busy host can time out registering with the GCS; the failed
 * node is stopped by startLocalNode, and a fresh one usually joins.
 */
async function startNodeWithRetries(config: StackConfig, group: NodeGroup, tries = 3): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await startLocalNode(config, group);
      return;
    } catch (err) {
      if (attempt >= tries) throw err;
      log(
        `a ${group.name} node failed to join (${err instanceof Error ? err.message.split('\n')[0] : err}); trying again`,
      );
    }
  }
}

/** Starts each group's initial nodes that are not running yet, one after another. */
export async function startWorkerNodes(config: StackConfig) {
  forgetDeadNodes(config);
  const { groups } = loadNodeGroups(config.nodeGroupsFile);
  const started = Date.now();
  let count = 0;
  for (const group of groups) {
    const missing = Math.max(
      0,
      (group.initialNodes ?? group.minNodes) - listLocalNodes(config, group.name).length,
    );
    for (let i = 0; i < missing; i++, count++) await startNodeWithRetries(config, group);
  }
  if (count > 0) log(`${count} Ray worker node(s) joined in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/**
 * Brings the stack up, repairing what is broken (see the header). Tried again as a whole when a
 * start fails: on a loaded host a raylet can give up on its dashboard agent and take a node (or
 * the head, just after it answered) down with it, and a second pass, which leaves what is healthy
 * and stops what is left of a dead head's cluster, usually completes.
 */
export async function stackUp(config: StackConfig = loadStackConfig(), tries = 3): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await stackUpOnce(config);
      return;
    } catch (err) {
      if (attempt >= tries) throw err;
      log(
        `the stack did not come up (${err instanceof Error ? err.message.split('\n')[0] : err}); trying again`,
      );
    }
  }
}

async function stackUpOnce(config: StackConfig): Promise<void> {
  fs.mkdirSync(config.logDir, { recursive: true });
  ensureTokenFile(config.ray.authTokenPath);
  // Independent services start side by side; worker nodes need the head. Every start is waited
  // for, failed or not, so that nothing is still starting once this returns or throws.
  const settle = async (starts: Promise<unknown>[]) => {
    const failed = (await Promise.allSettled(starts)).find((r) => r.status === 'rejected');
    if (failed) throw failed.reason;
  };
  await settle([
    startTemporal(config),
    startRayHead(config).then(() => settle([startWorkerNodes(config), startDispatcherHost(config)])),
    startQdrant(config),
    startCodec(config),
  ]);
  fs.writeFileSync(
    path.join(config.stateDir, 'stack.json'),
    JSON.stringify(
      {
        temporalAddress: config.temporal.address,
        webUi: `http://127.0.0.1:${config.temporal.uiPort}`,
        rayAddress: config.ray.address,
        rayDashboard: config.ray.dashboardUrl,
        qdrantUrl: config.qdrant.url,
        codecUrl: config.codec.url,
      },
      null,
      2,
    ),
  );
}

export async function stackDown(config: StackConfig = loadStackConfig()): Promise<void> {
  for (const node of listLocalNodes(config)) await stopLocalNode(config, node.name);
  for (const name of ['codec', 'dispatcher-host', 'qdrant', 'ray-head', 'temporal'] as const) {
    const pid = runningPid(config, name);
    if (pid !== undefined) {
      await stopGroup(pid);
      log(`${name} stopped`);
    }
    fs.rmSync(pidFile(config, name), { force: true });
  }
  forgetDeadNodes(config);
}

export function stackIsUp(config: StackConfig = loadStackConfig()): boolean {
  return (['temporal', 'ray-head', 'qdrant'] as const).every(
    (name) => runningPid(config, name) !== undefined,
  );
}

/** One line per service and node: what runs where (`npm run stack:status`). */
export function stackStatus(config: StackConfig = loadStackConfig()): string[] {
  const lines: string[] = [];
  for (const name of ['temporal', 'ray-head', 'dispatcher-host', 'qdrant', 'codec'] as const) {
    const pid = runningPid(config, name);
    lines.push(`${name}: ${pid === undefined ? 'stopped' : `running (pid ${pid})`}`);
  }
  for (const node of listLocalNodes(config))
    lines.push(`ray node ${node.name} (group ${node.group}): pid ${node.pid}`);
  return lines;
}
