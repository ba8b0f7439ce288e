/**
 * Control activities: facts about the cluster and the worker's policy that a
 * workflow needs to plan, read once and recorded in its history (so replay
 * sees the same plan even if the config file changes later).
 */
import type { JobPolicy } from '../core/schemas/job-policy';
import type { NodeGroup } from '../core/schemas/node-groups';

export interface PlacementContext {
  nodeGroups: NodeGroup[];
  allowedTaskPackages: string[];
  /** Null: job mode is off on this worker. */
  jobPolicy: JobPolicy | null;
}

export function createControlActivities(context: PlacementContext) {
  return {
    async loadPlacementContext(): Promise<PlacementContext> {
      return context;
    },
  };
}

export type ControlActivities = ReturnType<typeof createControlActivities>;
