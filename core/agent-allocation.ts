/**
 * What a step asks Ray for. Pure and workflow-safe.
 *
 * The step's own `resources` always win (merged over its agent's defaults).
 * When a step gives none and its agent has run before, the step asks for the
 * memory the agent was seen to peak at, with headroom: memory is what gets a
 * task killed, and the agent's defaults are a guess made before any run.
 * CPUs, GPUs and labels keep the agent's defaults: they shape the work, they
 * are not learned.
 */
import { chooseNodeGroup } from './placement';
import type { NodeGroup } from './schemas/node-groups';
import type { AgentPerformanceSummary, ResourceAllocation } from './schemas/pipeline-spec';
import type { Resources } from './schemas/resources';

/** Observed peak × this: room for inputs a little larger than the ones seen. */
export const MEMORY_HEADROOM = 1.25;
export const MEMORY_STEP_MB = 16;
/** Never ask for less than this, however small the observed peak. */
export const MIN_LEARNED_MEMORY_MB = 64;

export interface AllocationRequest {
  /** The step's explicit request, if it made one. */
  stepResources?: Resources;
  /** The agent's defaults; undefined for a plain task step. */
  agentResources?: Resources;
  observed: AgentPerformanceSummary | null;
  nodeGroups: readonly NodeGroup[];
}

export interface Allocation {
  resources: Resources;
  allocation: ResourceAllocation;
  /** Why a learned value was not used, when it was not. */
  note?: string;
}

export function learnedMemoryMb(peakMemoryMb: number): number {
  const withHeadroom = peakMemoryMb * MEMORY_HEADROOM;
  return Math.max(MIN_LEARNED_MEMORY_MB, Math.ceil(withHeadroom / MEMORY_STEP_MB) * MEMORY_STEP_MB);
}

export function allocateStepResources(request: AllocationRequest): Allocation {
  const { stepResources, agentResources, observed, nodeGroups } = request;
  if (stepResources !== undefined)
    return { resources: { ...agentResources, ...stepResources }, allocation: 'explicit' };
  if (agentResources === undefined) return { resources: {}, allocation: 'default' };
  const peak = observed?.peakMemoryMb;
  if (peak === null || peak === undefined || peak <= 0)
    return { resources: { ...agentResources }, allocation: 'agent-default' };
  const learned = { ...agentResources, memoryMb: learnedMemoryMb(peak) };
  const fits = chooseNodeGroup(learned, nodeGroups);
  if ('infeasible' in fits)
    return {
      resources: { ...agentResources },
      allocation: 'agent-default',
      note: `observed peak ${peak} MB does not fit a node: ${fits.infeasible}`,
    };
  return { resources: learned, allocation: 'observed' };
}
