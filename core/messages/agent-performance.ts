/**
 * The wire contract of the `agentPerformance` workflow: its id per agent, the
 * signal pipelines report runs with, and the query allocation reads.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { AgentRunObservation } from '../agent-performance-stats';
import type { AgentPerformanceSummary } from '../schemas/pipeline-spec';

export const AGENT_PERFORMANCE_WORKFLOW_TYPE = 'agentPerformance';
export const agentRunObservedSignal = defineSignal<[AgentRunObservation]>('agentRunObserved');
export const agentPerformanceQuery = defineQuery<AgentPerformanceSummary>('agentPerformance');

/** One performance workflow per agent per namespace. */
export function agentPerformanceWorkflowId(agent: string): string {
  return `pantheon-agent-performance-${agent}`;
}
