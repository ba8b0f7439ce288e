/** Plain-text rendering of pipeline state for the CLI: durations, tables, the usage report. */
import type { PipelineResult, StepResult } from '../core/schemas/pipeline-spec';

export function duration(ms: number | undefined): string {
  if (ms === undefined) return '—';
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  const minutes = Math.floor(ms / 60_000);
  return `${minutes}m${Math.round((ms % 60_000) / 1000)}s`;
}

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

/** Queue wait and running time of a step as of `now` (live while it waits or runs). */
export function stepTimes(step: StepResult, now: number): { queuedMs?: number; runningMs?: number } {
  if (step.finishedAtMs !== undefined) return { queuedMs: step.queuedMs, runningMs: step.runningMs };
  if (step.startedAtMs !== undefined)
    return {
      queuedMs: step.startedAtMs - (step.scheduledAtMs ?? step.startedAtMs),
      runningMs: now - step.startedAtMs,
    };
  if (step.scheduledAtMs !== undefined) return { queuedMs: now - step.scheduledAtMs };
  return {};
}

function agentLabel(step: StepResult): string {
  if (!step.agent) return '—';
  return step.fallbackFrom ? `${step.agent} (fallback for ${step.fallbackFrom.agent})` : step.agent;
}

export function stepsTable(result: PipelineResult, now = Date.now()): string {
  const rows = result.stepOrder.map((id) => {
    const step = result.steps[id]!;
    const times = stepTimes(step, now);
    return [
      id,
      agentLabel(step),
      step.items ? `${step.status} ${step.items.succeeded}/${step.items.total}` : step.status,
      String(step.attempts),
      step.node?.slice(0, 12) ?? '—',
      duration(times.queuedMs),
      duration(times.runningMs),
    ];
  });
  return table(['STEP', 'AGENT', 'STATUS', 'ATTEMPTS', 'NODE', 'QUEUED', 'RUNNING'], rows);
}

export function usageTable(result: PipelineResult): string {
  const rows = result.stepOrder
    .filter((id) => result.usage.steps[id])
    .map((id) => {
      const u = result.usage.steps[id]!;
      return [
        id,
        `${u.cpuSeconds.toFixed(2)}${u.cpuSecondsMeasured ? '' : '*'}`,
        u.peakMemoryMb !== undefined ? `${u.peakMemoryMb.toFixed(0)} MB` : '—',
        u.requestedMemoryMb !== undefined ? `${u.requestedMemoryMb} MB` : '—',
        duration(u.temporalQueueMs + u.rayQueueMs),
        String(u.attempts),
      ];
    });
  const t = result.usage.totals;
  rows.push([
    'TOTAL',
    t.cpuSeconds.toFixed(2),
    t.peakMemoryMb !== undefined ? `${t.peakMemoryMb.toFixed(0)} MB` : '—',
    '',
    duration(t.temporalQueueMs + t.rayQueueMs),
    String(t.attempts),
  ]);
  return [
    table(['STEP', 'CPU-SECONDS', 'PEAK MEMORY', 'REQUESTED', 'QUEUE WAIT', 'ATTEMPTS'], rows),
    '(* reserved CPUs × running time; agent steps are measured)',
  ].join('\n');
}

export function header(result: PipelineResult, workflowId: string): string {
  const line = `${result.name} (${workflowId}) · project ${result.project} · priority ${result.priority} · ${result.status}`;
  if (result.omitted === undefined) return line;
  // The result was made lighter to fit one Temporal payload: say what is missing, and the counts.
  const counts = Object.entries(result.stepCounts ?? {})
    .map(([status, n]) => `${n} ${status}`)
    .join(', ');
  return `${line}\nleft out: ${result.omitted}${counts ? `\nsteps: ${counts}` : ''}`;
}
