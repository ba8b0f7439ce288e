/**
 * Example: a map step. Where batch-scoring runs one agent step per item (up
 * to 100, each a Temporal activity), this scores up to 100,000 items as one
 * map step: one activity, each item its own Ray task.
 *
 *   items ── score (map: one Ray task per item) ── combine
 *
 * The list and the scores travel by reference (the blob store) once they are
 * large: the pipeline's history holds references, not 100,000 scores.
 */
import { z } from 'zod';
import { definePipeline } from '../../workflows/pipeline/code-pipeline';

export const bulkScoringInput = z
  .object({
    count: z.number().int().min(1).max(100_000),
    /** How long scoring one item takes, in seconds (a stand-in for real work). */
    thinkSeconds: z.number().min(0).max(10).default(0),
  })
  .strict();

export const bulkScoring = definePipeline(
  {
    name: 'bulk-scoring',
    description: 'make N items → score each (a map step: one Ray task per item) → combine',
    input: bulkScoringInput,
  },
  async (run, { count, thinkSeconds }) => {
    const items = await run.task<string[]>('items', 'pantheon_tasks.examples:make_items', { args: [count] });
    const scores = await run.map('score', 'pantheon_tasks.examples:score_item', items, {
      kwargs: { think_seconds: thinkSeconds },
      resources: { cpus: 0.5 },
    });
    const combined = await run.task('combine', 'pantheon_tasks.examples:combine_scores', { args: [scores] });
    return { combined, scored: run.result('score')?.items };
  },
);
