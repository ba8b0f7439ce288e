import fc from 'fast-check';
import { memoryConfigFromEnv } from '../../activities/memory/config';
import { MemoryInputError } from '../../activities/memory/errors';
import {
  MAX_MEMORY_TEXT_CHARS,
  memoryQueryFromStepInput,
  recallMemoryInputSchema,
  retainMemoryInputSchema,
  searchProjectMemoryInputSchema,
  forgetMemoryInputSchema,
} from '../../core/schemas/memory';

const validRetain = {
  project: 'acme',
  agent: 'researcher',
  pipeline: 'due-diligence',
  step: 'collect',
  provenance: { workflowId: 'wf-1', stepId: 'collect', attempt: 1 },
  memories: [{ text: 'The supplier ships on Tuesdays.', scope: 'shared' }],
};

/** The `path: message` pairs zod reports, as MemoryInputError words them. */
function issuesOf(
  schema: { safeParse(input: unknown): { success: boolean; error?: unknown } },
  input: unknown,
) {
  const result = schema.safeParse(input);
  if (result.success) return [];
  return MemoryInputError.fromZod('test', result.error as never).issues;
}

describe('retainMemoryInputSchema', () => {
  it('accepts a valid retain', () => {
    expect(retainMemoryInputSchema.safeParse(validRetain).success).toBe(true);
  });

  it.each([
    ['empty text', '', 'must not be empty'],
    ['blank text', '  \n\t ', 'must not be empty'],
    ['oversize text', 'a'.repeat(MAX_MEMORY_TEXT_CHARS + 1), `at most ${MAX_MEMORY_TEXT_CHARS}`],
    ['text without words', '?!… --', 'at least one letter or digit'],
  ])('refuses %s and names the field', (_label, text, message) => {
    const issues = issuesOf(retainMemoryInputSchema, {
      ...validRetain,
      memories: [validRetain.memories[0], { text, scope: 'private' }],
    });
    expect(issues).toEqual([{ path: 'memories[1].text', message: expect.stringContaining(message) }]);
  });

  it('refuses an unknown scope and says which are known', () => {
    const issues = issuesOf(retainMemoryInputSchema, {
      ...validRetain,
      memories: [{ text: 'hello', scope: 'public' }],
    });
    expect(issues).toEqual([
      { path: 'memories[0].scope', message: 'must be "shared" or "private", got "public"' },
    ]);
  });

  it('refuses missing provenance fields, empty batches and unknown fields', () => {
    const { attempt: _attempt, ...provenance } = validRetain.provenance;
    expect(issuesOf(retainMemoryInputSchema, { ...validRetain, provenance }).map((i) => i.path)).toEqual([
      'provenance.attempt',
    ]);
    expect(issuesOf(retainMemoryInputSchema, { ...validRetain, memories: [] }).map((i) => i.path)).toEqual([
      'memories',
    ]);
    expect(issuesOf(retainMemoryInputSchema, { ...validRetain, extra: 1 })).toEqual([
      { path: '(input)', message: expect.stringContaining('extra') },
    ]);
  });

  it('refuses identifiers with control characters or outer spaces', () => {
    expect(issuesOf(retainMemoryInputSchema, { ...validRetain, project: 'ac\nme' })).toEqual([
      { path: 'project', message: 'must not contain control characters' },
    ]);
    expect(issuesOf(retainMemoryInputSchema, { ...validRetain, agent: ' researcher' })).toEqual([
      { path: 'agent', message: 'must not start or end with whitespace' },
    ]);
  });
});

describe('recallMemoryInputSchema', () => {
  it('defaults to both scopes and five matches', () => {
    expect(recallMemoryInputSchema.parse({ project: 'acme', agent: 'a', query: 'supplier' })).toEqual({
      project: 'acme',
      agent: 'a',
      query: 'supplier',
      scopes: ['shared', 'private'],
      topK: 5,
    });
  });

  it('bounds topK and refuses repeated scopes', () => {
    const base = { project: 'acme', agent: 'a', query: 'supplier' };
    expect(issuesOf(recallMemoryInputSchema, { ...base, topK: 0 }).map((i) => i.path)).toEqual(['topK']);
    expect(issuesOf(recallMemoryInputSchema, { ...base, topK: 101 }).map((i) => i.path)).toEqual(['topK']);
    expect(issuesOf(recallMemoryInputSchema, { ...base, scopes: ['shared', 'shared'] })).toEqual([
      { path: 'scopes', message: 'must not repeat a scope' },
    ]);
    expect(issuesOf(recallMemoryInputSchema, { ...base, scopes: [] }).map((i) => i.path)).toEqual(['scopes']);
  });

  it('requires the reading agent', () => {
    expect(issuesOf(recallMemoryInputSchema, { project: 'acme', query: 'x' }).map((i) => i.path)).toEqual([
      'agent',
    ]);
  });
});

describe('searchProjectMemoryInputSchema and forgetMemoryInputSchema', () => {
  it('lists shared memory by default and requires an agent for private memory', () => {
    expect(searchProjectMemoryInputSchema.parse({ project: 'acme' })).toEqual({
      project: 'acme',
      scopes: ['shared'],
      limit: 20,
    });
    expect(issuesOf(searchProjectMemoryInputSchema, { project: 'acme', scopes: ['private'] })).toEqual([
      { path: 'agent', message: 'is required to read private memory' },
    ]);
  });

  it('always requires the project to forget', () => {
    expect(issuesOf(forgetMemoryInputSchema, { agent: 'a' }).map((i) => i.path)).toEqual(['project']);
  });
});

describe('MemoryInputError', () => {
  it('names every offending field in its message', () => {
    const result = retainMemoryInputSchema.safeParse({
      ...validRetain,
      project: '',
      memories: [{ text: '' }],
    });
    expect(result.success).toBe(false);
    if (result.success) return;
    const error = MemoryInputError.fromZod('retainMemory', result.error);
    expect(error.name).toBe('MemoryInputError');
    expect(error.message).toMatch(/^invalid retainMemory input: /);
    expect(error.message).toContain('project: must not be empty');
    expect(error.message).toContain('memories[0].text: must not be empty');
    expect(error.message).toContain('memories[0].scope');
  });
});

describe('memoryConfigFromEnv', () => {
  it('defaults to the local memory server, the e5 embedder, a 10,000-point limit per agent and no expiry', () => {
    expect(memoryConfigFromEnv({})).toEqual({
      qdrantUrl: 'http://127.0.0.1:6333',
      qdrantApiKey: undefined,
      memoryUrl: 'http://127.0.0.1:6333',
      embedder: 'e5-small-v1',
      grantSeconds: 21_600,
      collectionPrefix: 'pantheon_memory',
      retention: { maxPointsPerAgent: 10_000, ttlMs: undefined },
    });
  });

  it('reads the variables, 0 meaning no limit', () => {
    expect(
      memoryConfigFromEnv({
        QDRANT_URL: 'https://qdrant.example:6333',
        QDRANT_API_KEY: 'secret',
        PANTHEON_MEMORY_MAX_POINTS_PER_AGENT: '0',
        PANTHEON_MEMORY_TTL_SECONDS: '3600',
        PANTHEON_MEMORY_URL: 'http://memory.internal:6333',
        PANTHEON_MEMORY_EMBEDDER: 'hash-ngram-v1',
        PANTHEON_MEMORY_GRANT_SECONDS: '600',
      }),
    ).toEqual({
      qdrantUrl: 'https://qdrant.example:6333',
      qdrantApiKey: 'secret',
      memoryUrl: 'http://memory.internal:6333',
      embedder: 'hash-ngram-v1',
      grantSeconds: 600,
      collectionPrefix: 'pantheon_memory',
      retention: { maxPointsPerAgent: undefined, ttlMs: 3_600_000 },
    });
  });

  it('names the variable that is wrong', () => {
    expect(() => memoryConfigFromEnv({ QDRANT_URL: 'localhost:6333' })).toThrow(/QDRANT_URL/);
    expect(() => memoryConfigFromEnv({ PANTHEON_MEMORY_TTL_SECONDS: '-1' })).toThrow(
      /PANTHEON_MEMORY_TTL_SECONDS/,
    );
    expect(() => memoryConfigFromEnv({ PANTHEON_MEMORY_EMBEDDER: 'word2vec' })).toThrow(
      /PANTHEON_MEMORY_EMBEDDER/,
    );
  });
});

describe('memoryQueryFromStepInput', () => {
  it('joins the string values of a step input, depth first', () => {
    expect(
      memoryQueryFromStepInput({
        args: ['supplier audit', 3],
        kwargs: { region: 'Rotterdam', flags: [true] },
      }),
    ).toBe('supplier audit 3 Rotterdam true');
  });

  it('is undefined when the input holds no words', () => {
    expect(memoryQueryFromStepInput({ args: [], kwargs: { x: null, y: '---' } })).toBeUndefined();
  });

  it('always gives a query the recall schema accepts', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (input) => {
        const query = memoryQueryFromStepInput(input);
        if (query !== undefined) {
          expect(recallMemoryInputSchema.safeParse({ project: 'p', agent: 'a', query }).success).toBe(true);
        }
      }),
    );
    expect(memoryQueryFromStepInput(['word '.repeat(5000)])?.length).toBeLessThanOrEqual(
      MAX_MEMORY_TEXT_CHARS,
    );
  });
});
