/**
 * Example: ticket triage, with a fallback agent.
 *
 *   classify-0 … classify-N (in parallel) ── count
 *
 * Each ticket goes to the strict classifier, which refuses tickets that name
 * no category or several. When it has used up its retries, its fallback — the
 * overlap classifier — takes the step over, and the step's result says so
 * (`agent: 'overlap-classifier'`, `fallbackFrom.agent: 'strict-classifier'`).
 * The pipeline itself never sees a failure.
 */
import { z } from 'zod';
import { definePipeline, fanOut } from '../../workflows/pipeline/code-pipeline';
import { strictClassifier, ticketCounter } from './agents';

export const ticketTriageInput = z
  .object({
    tickets: z.array(z.string().min(1)).min(1).max(50),
    categories: z.array(z.string().min(1)).min(2).default(['billing', 'outage', 'login', 'feature']),
  })
  .strict();

export const ticketTriage = definePipeline(
  {
    name: 'ticket-triage',
    description: 'classify tickets in parallel (strict classifier, lenient fallback) → count per category',
    input: ticketTriageInput,
  },
  async (run, { tickets, categories }) => {
    const classified = await fanOut(tickets, (ticket, i) =>
      run.agent(`classify-${i}`, strictClassifier, { args: [ticket, categories] }),
    );
    return run.agent('count', ticketCounter, { args: [classified] });
  },
);
