/**
 * The local stack: Temporal dev server (SQLite file, Web UI), a Ray head with
 * its dashboard (Jobs API), Ray worker nodes per node group, and a local Qdrant.
 *
 * Entry point: scripts/stack.ts (`npm run stack:up|down|status`).
 *
 * `up` is idempotent: a service whose pid file points at a live, healthy
 * process is left alone.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { z } from 'zod';
import type { NodeGroup } from '../core/schemas/node-groups';
import { freePort, isAlive, portOpen, spawnDetached, stopGroup, tailFile, waitFor } from './processes';
import { loadNodeGroups, loadStackConfig, rayProcessEnv, REPO_ROOT, type StackConfig } from './config';
import { ensureTokenFile, rayAuthHeaders } from './ray-auth';
import { forgetDeadNodes, listLocalNodes, LOOPBACK_RAY, startLocalNode, stopLocalNode } from './ray-nodes';

const devServerConfigSchema = z.object({
  namespace: z.string(),
  searchAttributes: z.record(
    z.string(),
    z.enum(['Keyword', 'Text', 'Int', 'Double', 'Bool', 'Datetime', 'KeywordList']),
  ),
  dynamicConfig: z.record(z.string(), z.unknown()),
});

type ServiceName = 'temporal' | 'ray-head' | 'qdrant' | 'dispatcher-host';

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

async function startService(
  config: StackConfig,
  name: ServiceName,
  command: string,
  args: string[],
  healthy: () => Promise<boolean>,
  ports: number[],
  env?: NodeJS.ProcessEnv,
  timeoutMs = 90_000,
): Promise<void> {
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
      return;
    }
    throw new Error(`${name} runs (pid ${existing}) but is not healthy; run 'npm run stack:down' first`);
  }
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
  ];
  for (const [name, type] of Object.entries(dev.searchAttributes))
    args.push('--search-attribute', `${name}=${type}`);
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

export async function startRayHead(config: StackConfig) {
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
    '--ray-client-server-port',
    String(config.ray.clientServerPort),
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
  await startService(
    config,
    'ray-head',
    path.join(config.venvBin, 'python'),
    args,
    () => httpOk(`${config.ray.dashboardUrl}/api/version`, rayAuthHeaders(rayProcessEnv(config))),
    [config.ray.headPort, config.ray.dashboardPort],
    rayProcessEnv(config),
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

export async function stackUp(config: StackConfig = loadStackConfig()): Promise<void> {
  fs.mkdirSync(config.logDir, { recursive: true });
  ensureTokenFile(config.ray.authTokenPath);
  // Independent services start side by side; worker nodes need the head.
  await Promise.all([
    startTemporal(config),
    startRayHead(config).then(() => Promise.all([startWorkerNodes(config), startDispatcherHost(config)])),
    startQdrant(config),
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
      },
      null,
      2,
    ),
  );
}

export async function stackDown(config: StackConfig = loadStackConfig()): Promise<void> {
  for (const node of listLocalNodes(config)) await stopLocalNode(config, node.name);
  for (const name of ['dispatcher-host', 'qdrant', 'ray-head', 'temporal'] as const) {
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
  for (const name of ['temporal', 'ray-head', 'dispatcher-host', 'qdrant'] as const) {
    const pid = runningPid(config, name);
    lines.push(`${name}: ${pid === undefined ? 'stopped' : `running (pid ${pid})`}`);
  }
  for (const node of listLocalNodes(config))
    lines.push(`ray node ${node.name} (group ${node.group}): pid ${node.pid}`);
  return lines;
}
