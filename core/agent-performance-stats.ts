/**
 * An agent's performance record: a pure reducer over observed runs, kept by the
 * `agentPerformance` workflow and read when allocating the agent's next steps.
 * Workflow-safe.
 */
import { z } from 'zod';
import type { AgentPerformanceSummary } from './schemas/pipeline-spec';

/** Durations, memory and CPU are judged on this many recent successful runs: agents change. */
export const RECENT_RUNS = 20;
/** Observations remembered by key, so a run reported twice (a retried report) counts once. */
export const REMEMBERED_KEYS = 500;

export const agentRunObservationSchema = z
  .object({
    agent: z.string().min(1),
    /** `workflowId/stepId`: one observation per agent per step. */
    key: z.string().min(1),
    succeeded: z.boolean(),
    attempts: z.number().int().min(0),
    runningMs: z.number().min(0).optional(),
    peakMemoryMb: z.number().min(0).optional(),
    cpuSeconds: z.number().min(0).optional(),
    observedAtMs: z.number().int().min(0),
  })
  .strict();

export type AgentRunObservation = z.infer<typeof agentRunObservationSchema>;

export interface RecentRun {
  runningMs: number;
  peakMemoryMb: number | null;
  cpuSeconds: number | null;
}

export interface AgentPerformanceState {
  agent: string;
  runs: number;
  attempts: number;
  failedAttempts: number;
  recent: RecentRun[];
  keys: string[];
  updatedAtMs: number | null;
}

export function emptyPerformance(agent: string): AgentPerformanceState {
  return { agent, runs: 0, attempts: 0, failedAttempts: 0, recent: [], keys: [], updatedAtMs: null };
}

export function observeRun(state: AgentPerformanceState, run: AgentRunObservation): AgentPerformanceState {
  if (state.keys.includes(run.key)) return state;
  // A success took its last attempt; every attempt before it failed.
  const failed = run.succeeded ? Math.max(0, run.attempts - 1) : run.attempts;
  const recent =
    run.succeeded && run.runningMs !== undefined
      ? [
          ...state.recent,
          {
            runningMs: run.runningMs,
            peakMemoryMb: run.peakMemoryMb ?? null,
            cpuSeconds: run.cpuSeconds ?? null,
          },
        ].slice(-RECENT_RUNS)
      : state.recent;
  return {
    agent: state.agent,
    runs: state.runs + 1,
    attempts: state.attempts + run.attempts,
    failedAttempts: state.failedAttempts + failed,
    recent,
    keys: [...state.keys, run.key].slice(-REMEMBERED_KEYS),
    updatedAtMs: run.observedAtMs,
  };
}

function mean(values: number[]): number | null {
  return values.length === 0 ? null : values.reduce((a, b) => a + b, 0) / values.length;
}

export function summarizePerformance(state: AgentPerformanceState): AgentPerformanceSummary {
  const durations = state.recent.map((r) => r.runningMs);
  const memory = state.recent.map((r) => r.peakMemoryMb).filter((m): m is number => m !== null);
  const cpu = state.recent.map((r) => r.cpuSeconds).filter((c): c is number => c !== null);
  const meanDuration = mean(durations);
  const meanCpu = mean(cpu);
  return {
    agent: state.agent,
    runs: state.runs,
    attempts: state.attempts,
    failedAttempts: state.failedAttempts,
    failureRate: state.attempts === 0 ? 0 : state.failedAttempts / state.attempts,
    meanDurationMs: meanDuration === null ? null : Math.round(meanDuration),
    maxDurationMs: durations.length === 0 ? null : Math.max(...durations),
    peakMemoryMb: memory.length === 0 ? null : Math.max(...memory),
    meanCpuSeconds: meanCpu === null ? null : Math.round(meanCpu * 1000) / 1000,
    updatedAtMs: state.updatedAtMs,
  };
}
