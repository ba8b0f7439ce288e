import type { Schemas } from '@qdrant/js-client-rest';
import type { MemoryScope } from '../../core/schemas/memory';

type Filter = Schemas['Filter'];
type Condition = Schemas['Condition'];

/** Payload field names, shared with the Python handle. */
export const MEMORY_FIELDS = {
  project: 'project',
  scope: 'scope',
  agent: 'agent',
  pipeline: 'pipeline',
  step: 'step',
  text: 'text',
  createdAt: 'createdAt',
  createdAtMs: 'createdAtMs',
  provenance: 'provenance',
  metadata: 'metadata',
} as const;

export function matchValue(key: string, value: string): Condition {
  return { key, match: { value } };
}

export interface ReadScope {
  project: string;
  scopes: readonly MemoryScope[];
  /** Required for private reads: `buildReadFilter` refuses a private read without it. */
  agent?: string;
  pipeline?: string;
  /** Memories created before this instant (epoch ms) have expired. */
  notBeforeMs?: number;
}

/**
 * The filter of every read the project offers. The project condition always
 * comes first (it is the tenant key, and the one that excludes most points),
 * and the private branch always carries the agent: an agent reads the shared
 * memory of its project and its own private memory, nothing else.
 */
export function buildReadFilter(read: ReadScope): Filter {
  if (read.scopes.length === 0) throw new RangeError('a read needs at least one scope');
  if (read.scopes.includes('private') && read.agent === undefined) {
    throw new RangeError('a private read needs the reading agent');
  }
  const must: Condition[] = [matchValue(MEMORY_FIELDS.project, read.project)];
  if (read.pipeline !== undefined) must.push(matchValue(MEMORY_FIELDS.pipeline, read.pipeline));
  if (read.notBeforeMs !== undefined) {
    must.push({ key: MEMORY_FIELDS.createdAtMs, range: { gte: read.notBeforeMs } });
  }
  const branches: Condition[][] = [...new Set(read.scopes)].map((scope) =>
    scope === 'shared'
      ? [matchValue(MEMORY_FIELDS.scope, 'shared')]
      : [matchValue(MEMORY_FIELDS.scope, 'private'), matchValue(MEMORY_FIELDS.agent, read.agent ?? '')],
  );
  const [only] = branches;
  if (branches.length === 1 && only) must.push(...only);
  else must.push({ should: branches.map((conditions) => ({ must: conditions })) });
  return { must };
}

/** Everything of one project matching every given field: what `forget` deletes. */
export function buildProjectSelection(selection: {
  project: string;
  agent?: string;
  pipeline?: string;
  scope?: MemoryScope;
}): Filter {
  const must: Condition[] = [matchValue(MEMORY_FIELDS.project, selection.project)];
  if (selection.agent !== undefined) must.push(matchValue(MEMORY_FIELDS.agent, selection.agent));
  if (selection.pipeline !== undefined) must.push(matchValue(MEMORY_FIELDS.pipeline, selection.pipeline));
  if (selection.scope !== undefined) must.push(matchValue(MEMORY_FIELDS.scope, selection.scope));
  return { must };
}
