/**
 * Real Ray worker nodes on this host: `ray start --address … --block`, one
 * process group per node, recorded in the state folder. A node carries the
 * labels of its group plus a unique `pantheon.io/local-node` label, which is
 * how Ray's node id is tied back to the process that runs it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { DISK_RESOURCE } from '../../workflows/schemas/resources';
import { NODE_GROUP_LABEL, type NodeGroup } from '../../workflows/schemas/node-groups';
import { freePort, isAlive, spawnDetached, stopGroup, tailFile, waitFor } from '../../scripts/lib/processes';
import { rayProcessEnv, type StackConfig } from '../../scripts/lib/stack-config';
import { listRayNodes } from '../ray/cluster-state';

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
    'start',
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
    '--disable-usage-stats',
    '--block',
  ];
}

/**
 * Starts one node of `group` and returns once Ray sees it alive, with its Ray
 * node id. Nodes are started one at a time: raylets that start side by side on
 * one host can time out registering with the GCS.
 */
export async function startLocalNode(
  config: StackConfig,
  group: NodeGroup,
  timeoutMs = 90_000,
): Promise<LocalNodeRecord & { nodeId: string }> {
  const name = `${group.name}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6).toString(36)}`;
  const agentPort = await freePort();
  const proc = spawnDetached(path.join(config.venvBin, 'ray'), rayStartArgs(config, group, name, agentPort), {
    logFile: path.join(config.logDir, `ray-node-${name}.log`),
    env: rayProcessEnv(config),
  });
  const record: LocalNodeRecord = { name, group: group.name, pid: proc.pid, startedAt: Date.now() };
  fs.mkdirSync(nodesDir(config), { recursive: true });
  fs.writeFileSync(path.join(nodesDir(config), `${name}.json`), JSON.stringify(record));
  try {
    const nodeId = await waitFor(
      `Ray node ${name} to join`,
      async () => {
        if (!isAlive(proc.pid)) throw new Error(`ray start exited:\n${tailFile(proc.logFile, 5)}`);
        const node = (await listRayNodes(config.ray.dashboardUrl)).find(
          (n) => n.alive && n.labels[LOCAL_NODE_LABEL] === name,
        );
        return node?.nodeId;
      },
      timeoutMs,
      300,
    );
    return { ...record, nodeId };
  } catch (err) {
    await stopLocalNode(config, name);
    throw err;
  }
}

/** Stops a node's process group (SIGTERM makes `ray start --block` drain and stop the node). */
export async function stopLocalNode(config: StackConfig, name: string): Promise<void> {
  const file = path.join(nodesDir(config), `${name}.json`);
  if (!fs.existsSync(file)) return;
  const record = JSON.parse(fs.readFileSync(file, 'utf8')) as LocalNodeRecord;
  await stopGroup(record.pid, 40_000);
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
