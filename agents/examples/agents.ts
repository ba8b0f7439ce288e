/**
 * The example agents. Each runs a task from `ray-tasks/pantheon_tasks/examples.py`;
 * read them as templates for your own: a name, what it does, the task, what it
 * needs, what it may remember, and who takes over when it gives up.
 */
import { z } from 'zod';
import { defineAgent } from '../../core/agents';

const EXAMPLES = 'pantheon_tasks.examples';

/** Research: gather → analysts in parallel → reviewer → writer. */
export const gatherer = defineAgent({
  name: 'gatherer',
  description: 'Finds the sources most related to a topic.',
  task: `${EXAMPLES}:gather_sources`,
  resources: { cpus: 1, memoryMb: 256 },
  memory: ['shared'],
  retry: { maximumAttempts: 3 },
});

export const analyst = defineAgent({
  name: 'analyst',
  description: 'Reads sources through one lens (market, risk or technology) and scores what it finds.',
  task: `${EXAMPLES}:analyze`,
  resources: { cpus: 1, memoryMb: 256 },
  memory: ['shared', 'private'],
  retry: { maximumAttempts: 3 },
  timeoutSeconds: 300,
});

export const reviewer = defineAgent({
  name: 'reviewer',
  description: 'Checks the analysts’ work and ranks the lenses.',
  task: `${EXAMPLES}:review`,
  resources: { cpus: 1, memoryMb: 256 },
  memory: ['shared'],
});

export const writer = defineAgent({
  name: 'writer',
  description: 'Writes the reviewed findings up as a Markdown report.',
  task: `${EXAMPLES}:write_report`,
  resources: { cpus: 1, memoryMb: 256 },
  memory: ['private'],
  args: z.tuple([z.string(), z.unknown()]),
  output: z.looseObject({ markdown: z.string(), words: z.number().int() }),
});

/** Both classifiers take a ticket and the categories, and name one category. */
const classifierSchemas = {
  args: z.tuple([z.string(), z.array(z.string())]),
  output: z.looseObject({ category: z.string(), confidence: z.number(), method: z.string() }),
};

/** Triage: a strict classifier that gives up on ambiguous tickets, and the lenient one that takes over. */
export const overlapClassifier = defineAgent({
  name: 'overlap-classifier',
  description: 'Classifies any ticket by word overlap; less precise, never refuses.',
  task: `${EXAMPLES}:classify_by_overlap`,
  resources: { cpus: 1, memoryMb: 128 },
  ...classifierSchemas,
});

export const strictClassifier = defineAgent({
  name: 'strict-classifier',
  description: 'Classifies a ticket only when it names exactly one category.',
  task: `${EXAMPLES}:classify_strict`,
  resources: { cpus: 1, memoryMb: 128 },
  // An ambiguous ticket stays ambiguous: two quick tries, then the fallback takes over.
  retry: { maximumAttempts: 2, initialIntervalMs: 200 },
  fallback: overlapClassifier.name,
  ...classifierSchemas,
});

export const ticketCounter = defineAgent({
  name: 'ticket-counter',
  description: 'Counts classified tickets per category.',
  task: `${EXAMPLES}:summarize_tickets`,
  output: z.looseObject({ total: z.number().int(), byCategory: z.record(z.string(), z.number().int()) }),
});

/** Batch scoring: a fan-out over items, then a join. */
export const scorer = defineAgent({
  name: 'scorer',
  description: 'Scores one item.',
  task: `${EXAMPLES}:score_item`,
  resources: { cpus: 1 },
  output: z.looseObject({ item: z.unknown(), score: z.number() }),
});

export const combiner = defineAgent({
  name: 'combiner',
  description: 'Joins the scores of a batch: count, mean and best.',
  task: `${EXAMPLES}:combine_scores`,
  output: z.looseObject({ count: z.number().int(), best: z.unknown(), mean: z.number() }),
});

/**
 * No memory default on purpose: its steps start with Ray's default request and
 * from then on ask for what the agent was seen to use (see docs/pipelines.md).
 */
export const indexer = defineAgent({
  name: 'indexer',
  description: 'Builds a word index over documents, holding a working set in memory.',
  task: `${EXAMPLES}:build_index`,
  resources: { cpus: 1 },
});

export const EXAMPLE_AGENTS = [
  gatherer,
  analyst,
  reviewer,
  writer,
  strictClassifier,
  overlapClassifier,
  ticketCounter,
  scorer,
  combiner,
  indexer,
];
