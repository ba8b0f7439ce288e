/**
 * Example: a dynamic fan-out and join (map/reduce) with a memory-hungry
 * indexing step next to it.
 *
 *   index ───────────────┐
 *   score-0 … score-N ───┴── combine
 *
 * The number of `score-*` steps comes from the input, which a static DAG
 * cannot express but code can. The indexer declares no memory: its first run
 * asks Ray for the default, and later runs ask for what it was seen to use
 * (its performance record), with headroom.
 */
import { z } from 'zod';
import { definePipeline, fanOut } from '../../workflows/pipeline/code-pipeline';
import { combiner, indexer, scorer } from './agents';

export const batchScoringInput = z
  .object({
    items: z
      .array(z.union([z.string(), z.number()]))
      .min(1)
      .max(100),
    /** The index's working set, in MB. */
    indexMb: z.number().int().min(1).max(1024).default(64),
  })
  .strict();

export const batchScoring = definePipeline(
  {
    name: 'batch-scoring',
    description: 'index the batch while scoring every item in parallel → combine',
    input: batchScoringInput,
  },
  async (run, { items, indexMb }) => {
    const [index, scores] = await Promise.all([
      run.agent('index', indexer, { args: [items.map(String), indexMb] }),
      fanOut(items, (item, i) => run.agent(`score-${i}`, scorer, { args: [item] })),
    ]);
    const combined = await run.agent('combine', combiner, { args: [scores] });
    return { index, combined };
  },
);
