/**
 * The `local` node provider: real Ray worker nodes on this host
 * (`ray start --address … --block`, see local-ray-nodes.ts), one process group
 * per node, recorded in the stack's state folder.
 *
 * - `addNodes` returns at once: the nodes are named up front and started in
 *   the background, a few side by side. A node start is mostly the Python
 *   start-up of `ray start` and its raylet's agents, CPU-bound, and Ray gives
 *   a raylet 30 s to register: on a loaded host, starts side by side all miss
 *   it. So how many start at once adapts: halved after a failed start, one
 *   more after a good one. Until Ray sees a node it is listed as `starting`,
 *   so the next tick does not ask for it again.
 * - `removeNodes` stops only nodes that Ray no longer schedules on: drained
 *   (the apply activity drains with the idle-termination reason, which Ray
 *   refuses for a busy node), dead, or never joined. A node Ray lists as
 *   RUNNING or IDLE is refused, so a node that runs a step is never killed,
 *   whatever the caller asked.
 *
 * - Nodes start through the node launcher (node-launcher.ts), which forks a
 *   `ray start` from a process that has the CLI imported already; it is
 *   warmed up on the first `listNodes`, i.e. by the autoscaler's first tick.
 *
 * Node ids are the nodes' names (the `pantheon.io/local-node` label). The
 * queue of pending starts lives in this process: one provider per host, in the
 * worker that runs the autoscaler's activities.
 */
import type { Logger } from 'pino';
import type { StackConfig } from '../../../../stack/config';
import type { NodeGroup } from '../../../../core/schemas/node-groups';
import {
  LOCAL_NODE_JOIN_TIMEOUT_MS,
  LOCAL_NODE_LABEL,
  listLocalNodes,
  newLocalNodeName,
  startLocalNode,
  stopLocalNode,
} from '../../../../stack/ray-nodes';
import { LocalNodeLauncher } from './node-launcher';
import { NodeRemovalRefusedError, type NodeProvider, type ProviderNode } from '../provider';
import { isSchedulable, type RayClusterState } from '../../ray-cluster';

export interface LocalProviderOptions {
  /** How long a node may take to join Ray before its start counts as failed. */
  joinTimeoutMs?: number;
  /** The most nodes that may be starting at once (default 3); fewer after failed starts. */
  maxStartConcurrency?: number;
}

export class LocalNodeProvider implements NodeProvider {
  readonly name = 'local' as const;
  /** Nodes asked for that wait for a start slot, in order. */
  private readonly queue: Array<{ name: string; group: NodeGroup }> = [];
  private readonly starts = new Set<Promise<void>>();
  private readonly maxStartConcurrency: number;
  /** How many may start at once now: halved after a failed start, one more after a good one. */
  private startConcurrency: number;
  /** Nodes this process was asked for that have not joined Ray (or failed) yet: name → group. */
  private readonly inFlight = new Map<string, string>();
  /** Nodes being stopped by this process. */
  private readonly stopping = new Set<string>();
  private readonly stops = new Set<Promise<void>>();
  private closed = false;
  private readonly joinTimeoutMs: number;
  private readonly launcher: LocalNodeLauncher;

  constructor(
    private readonly stack: StackConfig,
    /** Ray's live nodes, read fresh (the GCS view: drained and dead nodes are not in it). */
    private readonly readRay: () => Promise<RayClusterState>,
    private readonly logger: Logger,
    options: LocalProviderOptions = {},
  ) {
    this.joinTimeoutMs = options.joinTimeoutMs ?? LOCAL_NODE_JOIN_TIMEOUT_MS;
    this.maxStartConcurrency = options.maxStartConcurrency ?? 3;
    this.startConcurrency = this.maxStartConcurrency;
    this.launcher = new LocalNodeLauncher(stack, logger.child({ component: 'node-launcher' }));
  }

  async listNodes(group: NodeGroup): Promise<ProviderNode[]> {
    if (!this.closed) this.launcher.warmUp();
    const live = liveLocalNodes(await this.readRay());
    const records = listLocalNodes(this.stack, group.name);
    const nodes: ProviderNode[] = [];
    for (const record of records) {
      if (this.stopping.has(record.name)) {
        nodes.push({ nodeId: record.name, state: 'stopping' });
      } else if (live.has(record.name)) {
        nodes.push({ nodeId: record.name, state: 'running' });
      } else if (this.inFlight.has(record.name) || Date.now() - record.startedAt < this.joinTimeoutMs) {
        nodes.push({ nodeId: record.name, state: 'starting' });
      } else {
        // Its process runs but Ray has not known it for longer than any start
        // takes: its raylet died or was drained. It runs nothing; reclaim it.
        this.stopInBackground(record.name, 'not a live Ray node long after it started');
        nodes.push({ nodeId: record.name, state: 'stopping' });
      }
    }
    const recorded = new Set(records.map((r) => r.name));
    for (const [name, groupName] of this.inFlight)
      if (groupName === group.name && !recorded.has(name)) nodes.push({ nodeId: name, state: 'starting' });
    return nodes;
  }

  /** Resolves once nodes start at full speed: the node launcher is up (or known to be unavailable). */
  async warmedUp(): Promise<void> {
    await this.launcher.ready();
  }

  async addNodes(group: NodeGroup, count: number): Promise<void> {
    if (this.closed) throw new Error('local provider is closed: no nodes are started while the worker stops');
    for (let i = 0; i < count; i++) {
      const name = newLocalNodeName(group);
      this.inFlight.set(name, group.name);
      this.queue.push({ name, group });
    }
    this.startQueued();
  }

  /** Starts queued nodes while a start slot is free. */
  private startQueued(): void {
    while (this.starts.size < this.startConcurrency && this.queue.length > 0) {
      const { name, group } = this.queue.shift()!;
      const started = Date.now();
      const start: Promise<void> = startLocalNode(
        this.stack,
        group,
        this.joinTimeoutMs,
        name,
        this.launcher.launch,
      )
        .then((node) => {
          this.startConcurrency = Math.min(this.maxStartConcurrency, this.startConcurrency + 1);
          this.logger.info(
            { group: group.name, node: name, rayNodeId: node.nodeId, ms: Date.now() - started },
            'local Ray node joined',
          );
        })
        .catch((err: unknown) => {
          this.startConcurrency = Math.max(1, Math.floor(this.startConcurrency / 2));
          this.logger.error(
            { err, group: group.name, node: name, startConcurrency: this.startConcurrency },
            'local node failed to start',
          );
        })
        .finally(() => {
          this.inFlight.delete(name);
          this.starts.delete(start);
          this.startQueued();
        });
      this.starts.add(start);
    }
  }

  async removeNodes(group: NodeGroup, nodeIds: readonly string[]): Promise<void> {
    if (nodeIds.length === 0) return;
    const records = new Set(listLocalNodes(this.stack, group.name).map((r) => r.name));
    const strangers = nodeIds.filter((id) => !records.has(id));
    if (strangers.length > 0) {
      throw new Error(
        `local provider: ${strangers.join(', ')} ${strangers.length === 1 ? 'is not a running node' : 'are not running nodes'} of group "${group.name}"; nothing was changed`,
      );
    }
    const live = liveLocalNodes(await this.readRay());
    const refused: Array<{ nodeId: string; reason: string }> = [];
    const removed: string[] = [];
    for (const nodeId of new Set(nodeIds)) {
      const rayNode = live.get(nodeId);
      if (rayNode && isSchedulable(rayNode)) {
        refused.push({
          nodeId,
          reason: `Ray still schedules work on it (${rayNode.status}): drain it first`,
        });
        continue;
      }
      this.stopInBackground(nodeId, rayNode ? `Ray status ${rayNode.status}` : 'drained');
      removed.push(nodeId);
    }
    if (refused.length > 0) throw new NodeRemovalRefusedError(refused, removed);
  }

  /** Waits for the starts and stops under way; refuses new starts. */
  async close(): Promise<void> {
    this.closed = true;
    // Starts that have not begun are dropped; those under way finish (or fail) first.
    for (const { name } of this.queue.splice(0)) this.inFlight.delete(name);
    while (this.starts.size > 0) await Promise.allSettled([...this.starts]);
    await Promise.allSettled([...this.stops]);
    await this.launcher.close();
  }

  /**
   * The node is out of Ray's scheduling already, so stopping its process is
   * clean-up, not a decision: it happens in the background while the node is
   * listed as `stopping`.
   */
  private stopInBackground(name: string, why: string): void {
    if (this.stopping.has(name)) return;
    this.stopping.add(name);
    this.logger.info({ node: name, why }, 'stopping local Ray node');
    const stop = stopLocalNode(this.stack, name)
      .catch((err: unknown) => this.logger.error({ err, node: name }, 'could not stop local Ray node'))
      .finally(() => {
        this.stopping.delete(name);
        this.stops.delete(stop);
      });
    this.stops.add(stop);
  }
}

/** Ray's live local nodes by name. */
function liveLocalNodes(ray: RayClusterState): Map<string, RayClusterState['nodes'][number]> {
  const byName = new Map<string, RayClusterState['nodes'][number]>();
  for (const node of ray.nodes) {
    const name = node.labels[LOCAL_NODE_LABEL];
    if (name !== undefined) byName.set(name, node);
  }
  return byName;
}
