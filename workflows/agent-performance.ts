/**
 * One long-running workflow per agent (`pantheon-agent-performance-<agent>`)
 * keeps what the agent's runs showed: durations, peak memory, CPU, failure
 * rate. Pipelines report each agent step to it by signal (signal-with-start,
 * from an activity) and read it by query before allocating a step.
 *
 * Why a workflow: the record is then as durable and as shared as the pipelines
 * themselves — every worker, on any host, against any Temporal deployment sees
 * the same numbers, and every observation is in its history.
 */
import {
  allHandlersFinished,
  condition,
  continueAsNew,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';
import {
  agentRunObservationSchema,
  emptyPerformance,
  observeRun,
  summarizePerformance,
  type AgentPerformanceState,
} from '../core/agent-performance-stats';
import { agentPerformanceQuery, agentRunObservedSignal } from '../core/messages/agent-performance';

export { agentPerformanceQuery, agentRunObservedSignal } from '../core/messages/agent-performance';

/** Keeps the history short enough to replay quickly, well before Temporal would suggest it. */
export const OBSERVATIONS_PER_RUN = 1000;

export interface AgentPerformanceInput {
  agent: string;
  /** Carried over by continue-as-new. */
  state?: AgentPerformanceState;
}

export async function agentPerformance(input: AgentPerformanceInput): Promise<void> {
  let state = input.state ?? emptyPerformance(input.agent);
  let observed = 0;
  setHandler(agentRunObservedSignal, (raw) => {
    const parsed = agentRunObservationSchema.safeParse(raw);
    // A malformed report is dropped, not fatal: the record outlives any one pipeline.
    if (!parsed.success || parsed.data.agent !== input.agent) return;
    state = observeRun(state, parsed.data);
    observed++;
  });
  setHandler(agentPerformanceQuery, () => summarizePerformance(state));
  await condition(() => observed >= OBSERVATIONS_PER_RUN || workflowInfo().continueAsNewSuggested);
  await condition(allHandlersFinished);
  await continueAsNew<typeof agentPerformance>({ agent: input.agent, state });
}
