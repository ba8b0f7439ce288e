/**
 * The messages the autoscaler workflow answers, and the records it exchanges
 * with its activities. Clients (the CLI, tests, `temporal workflow signal`)
 * import these constants; the names are the wire contract.
 *
 *   pause      signal  hold scaling after the tick under way
 *   resume     signal  scale again
 *   stop       signal  end the loop after the tick under way; the workflow completes with its summary
 *   configure  update  change any part of the settings; answers with the settings now in force
 *   status     query   settings, the last finished tick and the recent scale events
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import type { GroupDecision, GroupObservation } from '../autoscaling/policy-types';
import type { NodeGroup } from '../schemas/node-groups';
import type { AutoscalerSettings, AutoscalerSettingsPatch, ScaleEvent } from '../schemas/autoscaler';

/** What one group's apply did. */
export interface AppliedGroup {
  group: string;
  added: number;
  /** Nodes drained and handed to the provider for removal. */
  removed: string[];
  /** Nodes the decision removed that Ray would not drain (or the provider would not stop), and why. */
  refused: Array<{ nodeId: string; reason: string }>;
  error: string | null;
}

/** The observe activity's result: the policy's input, as seen at `nowMs`. */
export interface ClusterObservation {
  /** When Ray was read (epoch ms): the tick's time for the policy. */
  nowMs: number;
  /** The observed groups' definitions, as the worker has them. */
  groups: NodeGroup[];
  /** By group; a group that could not be read this tick is missing. */
  observations: Record<string, GroupObservation>;
  /** Nodes that cost money now, by group (starting, running or stopping). */
  billableNodes: Record<string, number>;
  /** What did not fit the policy's input but an operator should see: unreadable groups, unmanaged nodes. */
  notes: Record<string, string[]>;
}

/** The apply activity's result. */
export interface ApplyResult {
  groups: AppliedGroup[];
}

export interface TickRecord {
  tick: number;
  atMs: number;
  decision: GroupDecision[];
  applied: AppliedGroup[] | null;
  notes: ClusterObservation['notes'];
  error: string | null;
}

export interface AutoscalerStatus {
  paused: boolean;
  stopping: boolean;
  settings: AutoscalerSettings;
  groups: string[] | null;
  ticks: number;
  runs: number;
  nodeHoursUsed: number;
  lastTick: TickRecord | null;
  /** The most recent scale events, oldest first. */
  events: ScaleEvent[];
}

export interface AutoscalerSummary {
  stoppedBecause: string;
  ticks: number;
  runs: number;
  nodeHoursUsed: number;
  events: ScaleEvent[];
}

export const pauseSignal = defineSignal<[]>('pause');
export const resumeSignal = defineSignal<[]>('resume');
export const stopSignal = defineSignal<[{ reason?: string }?]>('stop');
export const configureUpdate = defineUpdate<AutoscalerSettings, [AutoscalerSettingsPatch]>('configure');
export const statusQuery = defineQuery<AutoscalerStatus>('status');
