/**
 * Real Ray worker nodes on this host: `ray start --address … --block`, one
 * process group per node, recorded in the state folder. A node carries the
 * labels of its group plus a unique `pantheon.io/local-node` label, which is
 * how Ray's node id is tied back to the process that runs it.
 *
 * Who runs `ray start` is the caller's choice (a `RayStartLauncher`): the CLI
 * itself by default, or the node launcher (node-launcher.ts), which saves the
 * CLI's start-up on the autoscaler's reaction path.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DISK_RESOURCE } from '../core/schemas/resources';
import { NODE_GROUP_LABEL, type NodeGroup } from '../core/schemas/node-groups';
import {
  freePort,
  isAlive,
  spawnDetached,
  stopGroup,
  tailFile,
  waitFor,
  type DetachedProcess,
} from './processes';
import { rayProcessEnv, type StackConfig } from './config';
import { rayAuthHeaders } from './ray-auth';
import { listRayNodes } from './ray-cluster-state';

export const LOCAL_NODE_LABEL = 'pantheon.io/local-node';

export interface LocalNodeRecord {
  name: string;
  group: string;
  pid: number;
  startedAt: number;
}

function nodesDir(config: StackConfig): string {
  return path.join(config.stateDir, 'nodes');
}

export function listLocalNodes(config: StackConfig, group?: string): LocalNodeRecord[] {
  const dir = nodesDir(config);
  if (!fs.existsSync(dir)) return [];
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as LocalNodeRecord)
    .filter((n) => (group === undefined || n.group === group) && isAlive(n.pid));
}

/** The arguments of `ray start` (after `start`) for one node of `group`. */
export function rayStartArgs(
  config: StackConfig,
  group: NodeGroup,
  name: string,
  agentPort: number,
): string[] {
  const labels = { ...group.node.labels, [NODE_GROUP_LABEL]: group.name, [LOCAL_NODE_LABEL]: name };
  const resources: Record<string, number> = { ...group.node.custom };
  if (group.node.diskGb > 0) resources[DISK_RESOURCE] = group.node.diskGb;
  return [
    '--address',
    config.ray.address,
    '--node-ip-address',
    '127.0.0.1',
    '--num-cpus',
    String(group.node.cpus),
    '--num-gpus',
    String(group.node.gpus),
    '--memory',
    String(Math.floor(group.node.memoryMb * 1024 * 1024)),
    '--resources',
    JSON.stringify(resources),
    '--labels',
    Object.entries(labels)
      .map(([k, v]) => `${k}=${v}`)
      .join(','),
    '--object-store-memory',
    String(config.ray.objectStoreBytes),
    '--include-log-monitor',
    'false',
    '--dashboard-agent-listen-port',
    String(agentPort),
    // A temp dir of its own: Ray numbers a node's socket files by what it finds
    // in the shared session folder, so two nodes starting side by side on one
    // host pick the same plasma socket and one dies ("bind: Address already in use").
    '--temp-dir',
    nodeTempDir(config, name),
    '--disable-usage-stats',
    '--block',
  ];
}

/**
 * A node's own Ray temp dir, kept short: Ray puts its unix sockets under
 * `<temp>/session_…/sockets/`, and a socket path may not exceed 107 bytes.
 */
export function nodeTempDir(config: StackConfig, name: string): string {
  return path.join(config.ray.tempDir, 'n', name.slice(name.lastIndexOf('-', name.lastIndexOf('-') - 1) + 1));
}

/** How long a local node may take to join Ray before its start counts as failed. */
export const LOCAL_NODE_JOIN_TIMEOUT_MS = 90_000;

/**
 * Runs `ray start <args>` with its output in `logFile`, as the leader of a
 * process group of its own (so that `stopGroup` stops the whole node).
 */
export type RayStartLauncher = (args: string[], logFile: string) => Promise<DetachedProcess>;

/**
 * The `ray` CLI as the stack runs it (after `python`): one that keeps a node
 * given 127.0.0.1 on loopback, where the plain CLI moves it to the host's
 * routable address (ray-tasks/pantheon_runtime/loopback_ray.py).
 */
export const LOOPBACK_RAY = ['-m', 'pantheon_runtime.loopback_ray'];

/** The plain way: the `ray` CLI of the stack's virtualenv, one process per start. */
export function rayCliLauncher(config: StackConfig): RayStartLauncher {
  return async (args, logFile) =>
    spawnDetached(path.join(config.venvBin, 'python'), [...LOOPBACK_RAY, 'start', ...args], {
      logFile,
      env: rayProcessEnv(config),
    });
}

/** A fresh node name: the group's name and a unique suffix (a caller that queues a start names the node up front). */
export function newLocalNodeName(group: NodeGroup): string {
  return `${group.name}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;
}

/**
 * Starts one node of `group` and returns once Ray sees it alive, with its Ray
 * node id. Nodes may start side by side: each has its own temp dir (see
 * `nodeTempDir`), without which two raylets starting together on one host
 * collide on their socket files and one never registers.
 */
export async function startLocalNode(
  config: StackConfig,
  group: NodeGroup,
  timeoutMs = LOCAL_NODE_JOIN_TIMEOUT_MS,
  name = newLocalNodeName(group),
  launch: RayStartLauncher = rayCliLauncher(config),
): Promise<LocalNodeRecord & { nodeId: string }> {
  const agentPort = await freePort();
  const proc = await launch(
    rayStartArgs(config, group, name, agentPort),
    path.join(config.logDir, `ray-node-${name}.log`),
  );
  const record: LocalNodeRecord = { name, group: group.name, pid: proc.pid, startedAt: Date.now() };
  fs.mkdirSync(nodesDir(config), { recursive: true });
  fs.writeFileSync(path.join(nodesDir(config), `${name}.json`), JSON.stringify(record));
  try {
    // waitFor retries a check that throws, so an exited `ray start` is an answer, not an error:
    // a start that failed is known at once, not after the whole timeout.
    const joined = await waitFor(
      `Ray node ${name} to join`,
      async () => {
        if (!isAlive(proc.pid)) return { exited: true as const };
        const node = (
          await listRayNodes(config.ray.dashboardUrl, rayAuthHeaders(rayProcessEnv(config)))
        ).find((n) => n.alive && n.labels[LOCAL_NODE_LABEL] === name);
        return node ? { exited: false as const, nodeId: node.nodeId } : undefined;
      },
      timeoutMs,
      300,
    );
    if (joined.exited) throw new Error(`ray start for ${name} exited:\n${tailFile(proc.logFile, 5)}`);
    return { ...record, nodeId: joined.nodeId };
  } catch (err) {
    await stopLocalNode(config, name);
    throw err;
  }
}

/**
 * Stops a node's process group (SIGTERM makes `ray start --block` drain and stop the node;
 * SIGKILL after `graceMs`).
 */
export async function stopLocalNode(config: StackConfig, name: string, graceMs = 40_000): Promise<void> {
  const file = path.join(nodesDir(config), `${name}.json`);
  if (!fs.existsSync(file)) return;
  const record = JSON.parse(fs.readFileSync(file, 'utf8')) as LocalNodeRecord;
  await stopGroup(record.pid, graceMs);
  fs.rmSync(file, { force: true });
}

export function forgetDeadNodes(config: StackConfig): void {
  const dir = nodesDir(config);
  if (!fs.existsSync(dir)) return;
  for (const f of fs.readdirSync(dir)) {
    const record = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as LocalNodeRecord;
    if (!isAlive(record.pid)) fs.rmSync(path.join(dir, f), { force: true });
  }
}
