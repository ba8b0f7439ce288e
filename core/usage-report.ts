/**
 * The usage report of a pipeline run: per step, per agent and in total, what
 * it spent (attempts, CPU-seconds measured or estimated from the request,
 * time queued in Temporal and in Ray, time running, peak memory). Pure: the
 * workflow builds it from its step records for `progress` and the result.
 */
import type { AgentPerformanceSummary, StepResult, UsageReport } from './schemas/pipeline-spec';

export function usageReport(
  order: readonly string[],
  results: Readonly<Record<string, StepResult>>,
  rayQueueMs: Readonly<Record<string, number>>,
  observed: Readonly<Record<string, AgentPerformanceSummary | null>>,
): UsageReport {
  const report: UsageReport = {
    steps: Object.create(null),
    agents: Object.create(null),
    totals: { steps: 0, attempts: 0, cpuSeconds: 0, runningMs: 0, temporalQueueMs: 0, rayQueueMs: 0 },
  };
  for (const id of order) {
    const r = results[id]!;
    const runningMs = r.runningMs ?? 0;
    const measured = r.cpuSeconds !== undefined;
    const cpuSeconds = measured ? r.cpuSeconds! : ((r.resources?.cpus ?? 1) * runningMs) / 1000;
    const temporalQueueMs =
      r.startedAtMs !== undefined && r.scheduledAtMs !== undefined
        ? Math.max(0, r.startedAtMs - r.scheduledAtMs)
        : 0;
    const attempts = r.attempts + (r.fallbackFrom?.attempts ?? 0);
    report.steps[id] = {
      ...(r.agent !== undefined && { agent: r.agent }),
      attempts,
      ...(r.node !== undefined && { node: r.node }),
      temporalQueueMs,
      rayQueueMs: rayQueueMs[id] ?? 0,
      runningMs,
      cpuSeconds: Math.round(cpuSeconds * 1000) / 1000,
      cpuSecondsMeasured: measured,
      ...(r.resources?.memoryMb !== undefined && { requestedMemoryMb: r.resources.memoryMb }),
      ...(r.peakMemoryMb !== undefined && { peakMemoryMb: r.peakMemoryMb }),
    };
    const t = report.totals;
    t.steps++;
    t.attempts += attempts;
    t.cpuSeconds = Math.round((t.cpuSeconds + cpuSeconds) * 1000) / 1000;
    t.runningMs += runningMs;
    t.temporalQueueMs += temporalQueueMs;
    t.rayQueueMs += rayQueueMs[id] ?? 0;
    if (r.peakMemoryMb !== undefined) t.peakMemoryMb = Math.max(t.peakMemoryMb ?? 0, r.peakMemoryMb);
    const agentUsage = (agent: string) =>
      (report.agents[agent] ??= {
        steps: 0,
        attempts: 0,
        cpuSeconds: 0,
        observed: observed[agent] ?? null,
      });
    if (r.fallbackFrom) {
      // The agent that gave up spent attempts on the step too.
      const primary = agentUsage(r.fallbackFrom.agent);
      primary.steps++;
      primary.attempts += r.fallbackFrom.attempts;
    }
    if (r.agent !== undefined) {
      const a = agentUsage(r.agent);
      a.steps++;
      a.attempts += r.attempts;
      a.cpuSeconds = Math.round((a.cpuSeconds + cpuSeconds) * 1000) / 1000;
      if (r.peakMemoryMb !== undefined) a.peakMemoryMb = Math.max(a.peakMemoryMb ?? 0, r.peakMemoryMb);
    }
  }
  return report;
}
