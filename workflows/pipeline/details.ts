/**
 * The Web UI's view of a running pipeline: its "current details", rendered
 * from the step records. Pure; rendered once per burst of changes.
 */
import type { PipelineStatus, StepResult, StepStatus } from '../../core/schemas/pipeline-spec';

/** Rows shown step by step; the rest is counted. */
const MAX_DETAIL_ROWS = 25;

/** Markdown for the Web UI's "current details": where the pipeline is, step by step. */
export function pipelineDetails(
  pipeline: { name: string; project: string; priority: number; status: PipelineStatus },
  order: readonly string[],
  results: Readonly<Record<string, StepResult>>,
): string {
  const counts: Partial<Record<StepStatus, number>> = {};
  for (const id of order) {
    const s = results[id]!.status;
    counts[s] = (counts[s] ?? 0) + 1;
  }
  const summary = Object.entries(counts)
    .map(([status, n]) => `${n} ${status}`)
    .join(', ');
  const lines = order.slice(0, MAX_DETAIL_ROWS).map((id) => {
    const r = results[id]!;
    const facts = [
      r.status,
      ...(r.agent
        ? [`agent ${r.agent}${r.fallbackFrom ? ` (fallback for ${r.fallbackFrom.agent})` : ''}`]
        : []),
      ...(r.attempts > 1 ? [`attempt ${r.attempts}`] : []),
      ...(r.node ? [`node ${r.node.slice(0, 8)}`] : []),
    ];
    return `- \`${id}\` ${facts.join(' · ')}`;
  });
  const more = order.length > MAX_DETAIL_ROWS ? [`- … and ${order.length - MAX_DETAIL_ROWS} more steps`] : [];
  return [
    `**${pipeline.name}** · project ${pipeline.project} · priority ${pipeline.priority} · ${pipeline.status}`,
    '',
    summary || 'no steps yet',
    '',
    ...lines,
    ...more,
  ].join('\n');
}
