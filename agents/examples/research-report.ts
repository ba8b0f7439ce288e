/**
 * Example: a research report, the classic agent pipeline.
 *
 *   gather ──┬── analyze-market ──────┐
 *            ├── analyze-risk ────────┼── review ── write
 *            └── analyze-technology ──┘
 *
 * The gatherer finds sources; three analysts read them in parallel, each
 * through its own lens; the reviewer checks and ranks their work; the writer
 * turns it into Markdown. Start it with
 *
 *   npx pantheon run research-report --project acme --input '{"topic":"battery storage"}'
 */
import { z } from 'zod';
import { definePipeline, join } from '../../workflows/pipeline/code-pipeline';
import { analyst, gatherer, reviewer, writer } from './agents';

export const researchReportInput = z
  .object({
    topic: z.string().min(1).max(200),
    /** How many sources the gatherer hands the analysts. */
    sources: z.number().int().min(1).max(8).default(6),
  })
  .strict();

export const researchReport = definePipeline(
  {
    name: 'research-report',
    description: 'gather → market, risk and technology analysts in parallel → reviewer → writer',
    input: researchReportInput,
  },
  async (run, { topic, sources: limit }) => {
    const sources = await run.agent('gather', gatherer, { args: [topic, limit] });

    const analyses = await join({
      market: run.agent('analyze-market', analyst, { args: [sources, 'market'] }),
      risk: run.agent('analyze-risk', analyst, { args: [sources, 'risk'] }),
      technology: run.agent('analyze-technology', analyst, { args: [sources, 'technology'] }),
    });

    const reviewed = await run.agent('review', reviewer, { args: [analyses] });
    return run.agent('write', writer, { args: [topic, reviewed] });
  },
);
