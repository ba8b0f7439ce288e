/**
 * `pantheon memory search`: an operator's view of one project's agent memory,
 * through the same store (and the same isolation rules) as the agents use.
 */
import { memoryConfigFromEnv } from '../activities/memory/config';
import { MemoryInputError } from '../activities/memory/errors';
import { openMemoryStore } from '../activities/memory/store';
import { loadStackConfig, memoryEnv } from '../stack/config';
import type { MemoryScope } from '../core/schemas/memory';
import { table } from './format';
import { UsageError } from './targets';

export interface MemorySearchOptions {
  project: string;
  query?: string;
  scope?: MemoryScope[];
  agent?: string;
  pipeline?: string;
  limit?: number;
  json?: boolean;
}

const TEXT_COLUMN_CHARS = 80;

export async function searchMemory(options: MemorySearchOptions): Promise<number> {
  const store = await openMemoryStore(
    memoryConfigFromEnv({ ...process.env, ...memoryEnv(loadStackConfig()) }),
  );
  const entries = await store
    .searchProject({
      project: options.project,
      query: options.query,
      scopes: options.scope,
      agent: options.agent,
      pipeline: options.pipeline,
      limit: options.limit,
    })
    .catch((err: unknown) => {
      // Bad input is the caller's to fix: a usage error naming the field, as for every other command.
      throw err instanceof MemoryInputError ? new UsageError(err.message) : err;
    });
  if (options.json) {
    process.stdout.write(`${JSON.stringify(entries, null, 2)}\n`);
    return 0;
  }
  if (entries.length === 0) {
    process.stdout.write('no memories found\n');
    return 0;
  }
  const rows = entries.map((m) => [
    m.score === undefined ? '—' : m.score.toFixed(3),
    m.scope,
    m.agent,
    m.pipeline,
    m.step,
    m.createdAt.replace('T', ' ').slice(0, 19),
    m.text.length > TEXT_COLUMN_CHARS ? `${m.text.slice(0, TEXT_COLUMN_CHARS - 1)}…` : m.text,
  ]);
  process.stdout.write(
    `${table(['SCORE', 'SCOPE', 'AGENT', 'PIPELINE', 'STEP', 'CREATED (UTC)', 'TEXT'], rows)}\n`,
  );
  return 0;
}
