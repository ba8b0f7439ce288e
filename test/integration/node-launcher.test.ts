/**
 * The node launcher: local nodes started by forking `ray start` from a process
 * that has the `ray` CLI imported already. A launched node must be the node the
 * CLI would start: Ray lists it with its group's labels and resources, it leads
 * a process group of its own (how nodes are stopped), and once stopped it is
 * gone, not a zombie of the launcher. A malformed request is refused, naming
 * the field; a launcher that cannot run leaves node starts to the CLI; and a
 * launcher closed while it starts does not outlive its close.
 */
import * as fs from 'node:fs';
import { listRayNodes } from '../../stack/ray-cluster-state';
import { PythonHelperCallError } from '../../stack/python-helper';
import { LOCAL_NODE_LABEL, newLocalNodeName, startLocalNode, stopLocalNode } from '../../stack/ray-nodes';
import { LocalNodeLauncher } from '../../activities/scaling/providers/local/node-launcher';
import { isAlive } from '../../stack/processes';
import { loadStackConfig } from '../../stack/config';
import { createTestLogger } from '../helpers/test-log';
import { NODE_GROUP_LABEL, nodeGroupSchema } from '../../core/schemas/node-groups';
import { waitUntil } from '../helpers/test-env';

const LAUNCH_RESOURCE = 'launch_drill_slot';
const group = nodeGroupSchema.parse({
  name: 'launch-drill',
  node: {
    cpus: 1,
    memoryMb: 512,
    custom: { [LAUNCH_RESOURCE]: 2 },
    labels: { 'pantheon.io/drill': 'launch' },
  },
  minNodes: 0,
  maxNodes: 1,
  costPerNodeHour: 100,
});

const stack = loadStackConfig();
const logger = createTestLogger('warn', 'node-launcher-test');
const started: string[] = [];

afterAll(async () => {
  for (const name of started) await stopLocalNode(stack, name);
}, 120_000);

/** The parent pid and the process group of /proc/<pid>/stat, after the command name. */
function parentAndGroup(pid: number): { ppid: number; pgid: number } {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const [, ppid, pgid] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return { ppid: Number(ppid), pgid: Number(pgid) };
}

async function aliveRayNode(name: string) {
  return (await listRayNodes(stack.ray.dashboardUrl)).find(
    (n) => n.alive && n.labels[LOCAL_NODE_LABEL] === name,
  );
}

test('a launched node joins Ray as its group node, leads its own process group, and is gone once stopped', async () => {
  const launcher = new LocalNodeLauncher(stack, logger);
  try {
    const name = newLocalNodeName(group);
    started.push(name);
    const node = await startLocalNode(stack, group, 90_000, name, launcher.launch);

    const { ppid, pgid } = parentAndGroup(node.pid);
    expect(ppid).toBe(launcher.pid); // forked by the launcher, not by the CLI fallback
    expect(pgid).toBe(node.pid);
    const rayNode = await aliveRayNode(name);
    expect(rayNode?.nodeId).toBe(node.nodeId);
    expect(rayNode?.labels).toMatchObject({ [NODE_GROUP_LABEL]: group.name, 'pantheon.io/drill': 'launch' });
    expect(rayNode?.resourcesTotal).toMatchObject({ CPU: 1, [LAUNCH_RESOURCE]: 2 });
    // `ps` shows it as the `ray start` it is.
    expect(fs.readFileSync(`/proc/${node.pid}/cmdline`, 'utf8')).toMatch(/^ray start --address/);

    await stopLocalNode(stack, name);
    // Reaped by the launcher: a zombie would still answer signal 0.
    expect(isAlive(node.pid)).toBe(false);
    await waitUntil(
      `Ray to drop node ${name}`,
      async () => ((await aliveRayNode(name)) ? undefined : true),
      60_000,
    );
  } finally {
    await launcher.close();
  }
}, 180_000);

test('a malformed launch request is refused with the field named, and starts nothing', async () => {
  const launcher = new LocalNodeLauncher(stack, logger);
  try {
    await expect(launcher.launch(['--address', stack.ray.address], '')).rejects.toThrow(
      new PythonHelperCallError('ValueError', 'params.logFile must be a file path'),
    );
    const children = fs.readFileSync(`/proc/${launcher.pid}/task/${launcher.pid}/children`, 'utf8').trim();
    expect(children).toBe('');
  } finally {
    await launcher.close();
  }
}, 60_000);

test('when the launcher cannot run, the node starts through the ray CLI', async () => {
  const launcher = new LocalNodeLauncher(stack, logger);
  await launcher.close(); // a closed launcher refuses to start, as one whose Python cannot start would
  const name = newLocalNodeName(group);
  started.push(name);
  const node = await startLocalNode(stack, group, 90_000, name, launcher.launch);
  expect(parentAndGroup(node.pid)).toEqual({ ppid: process.pid, pgid: node.pid });
  expect((await aliveRayNode(name))?.nodeId).toBe(node.nodeId);
  await stopLocalNode(stack, name);
  expect(isAlive(node.pid)).toBe(false);
}, 180_000);

test('a launcher closed while it is still starting does not outlive its close', async () => {
  const launcher = new LocalNodeLauncher(stack, logger);
  launcher.warmUp(); // the import takes about a second: close() comes while it runs
  await launcher.close();
  expect(launcherProcessesOf(process.pid)).toEqual([]);
}, 60_000);

/** Node launcher processes whose parent is `ppid`. */
function launcherProcessesOf(ppid: number): number[] {
  return fs
    .readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((entry) => {
      try {
        return (
          fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('pantheon_runtime.node_launcher') &&
          parentAndGroup(Number(entry)).ppid === ppid
        );
      } catch {
        return false; // ended while we looked
      }
    })
    .map(Number);
}
