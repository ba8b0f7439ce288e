/**
 * What Ray itself recorded of a set of tasks, turned into the question admission must answer
 * "no" to: was any node ever asked for more than it has? Each task holds its request on its node
 * from its submission to Ray until it ended (Ray's own creation and end times); a task submitted
 * while its node was full would wait inside Ray, which is what cluster-wide admission prevents.
 */
import type { RayTaskRecord } from '../../stack/ray-cluster-state';

export interface NodeOccupancy {
  nodeId: string;
  /** The most of `resource` that tasks submitted to this node held or waited for at once. */
  peak: number;
}

export function peakOccupancy(tasks: readonly RayTaskRecord[], resource = 'CPU'): NodeOccupancy[] {
  const byNode = new Map<string, { at: number; delta: number }[]>();
  for (const task of tasks) {
    if (task.nodeId === null || task.createdAtMs === null || task.endedAtMs === null) continue;
    const amount = task.resources[resource] ?? 0;
    const events = byNode.get(task.nodeId) ?? [];
    events.push({ at: task.createdAtMs, delta: amount }, { at: task.endedAtMs, delta: -amount });
    byNode.set(task.nodeId, events);
  }
  return [...byNode].map(([nodeId, events]) => {
    // At the same instant an end comes before a start: the dispatcher admits only after an end.
    events.sort((a, b) => a.at - b.at || a.delta - b.delta);
    let held = 0;
    let peak = 0;
    for (const e of events) {
      held += e.delta;
      peak = Math.max(peak, held);
    }
    return { nodeId, peak };
  });
}

/** The longest any task waited in Ray between its submission and its start (a new worker process's start included). */
export function longestRayWaitMs(tasks: readonly RayTaskRecord[]): number {
  return Math.max(
    0,
    ...tasks
      .filter((t) => t.createdAtMs !== null && t.startedAtMs !== null)
      .map((t) => t.startedAtMs! - t.createdAtMs!),
  );
}
