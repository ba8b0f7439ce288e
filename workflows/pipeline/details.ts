/**
 * The Web UI's view of a running pipeline: its "current details", rendered
 * from the step records. Pure; rendered once per burst of changes.
 */
import type { PipelineStatus, StepResult, StepStatus } from '../../core/schemas/pipeline-spec';

/** Rows shown step by step; the rest is counted. */
const MAX_DETAIL_ROWS = 25;

/** The summary's order: what is done, what runs, what waits. */
const SUMMARY_ORDER: readonly StepStatus[] = [
  'succeeded',
  'failed',
  'cancelled',
  'skipped',
  'running',
  'queued',
  'pending',
];

/** Markdown for the Web UI's "current details": where the pipeline is, step by step. */
export function pipelineDetails(
  pipeline: { name: string; project: string; priority: number; status: PipelineStatus },
  order: readonly string[],
  results: Readonly<Record<string, StepResult>>,
  /** How many steps are in each status (kept by the step records: no pass over tens of thousands of steps). */
  countOf: (status: StepStatus) => number,
): string {
  const summary = SUMMARY_ORDER.filter((status) => countOf(status) > 0)
    .map((status) => `${countOf(status)} ${status}`)
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
