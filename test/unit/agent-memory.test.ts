/**
 * What an agent's output asks to remember (workflows/agent-memory.ts): each
 * memory gets a scope the agent declared, and a malformed list fails the step
 * for good with a message naming the field.
 */
import { ApplicationFailure } from '@temporalio/common';
import { defineAgent } from '../../core/agents';
import { factsToRetain, memoriesToRetain } from '../../workflows/pipeline/agent-memory';

const both = defineAgent({
  name: 'both',
  description: 'keeps both scopes',
  task: 'pantheon_tasks.examples:analyze',
  memory: ['shared', 'private'],
});
const sharedOnly = defineAgent({
  name: 'shared-only',
  description: 'keeps shared memory',
  task: 'pantheon_tasks.examples:review',
  memory: ['shared'],
});

function refusal(agent: typeof both, output: unknown): ApplicationFailure {
  try {
    memoriesToRetain(agent, output);
  } catch (err) {
    return err as ApplicationFailure;
  }
  throw new Error('expected memoriesToRetain to refuse');
}

test('outputs without a memories list keep nothing', () => {
  for (const output of [null, 3, 'text', ['a'], { result: 1 }])
    expect(memoriesToRetain(both, output)).toEqual([]);
});

test('a bare text goes to private memory when the agent keeps one, else to shared', () => {
  expect(memoriesToRetain(both, { memories: ['fact one'] })).toEqual([
    { text: 'fact one', scope: 'private' },
  ]);
  expect(memoriesToRetain(sharedOnly, { memories: ['fact one'] })).toEqual([
    { text: 'fact one', scope: 'shared' },
  ]);
});

test('an explicit scope and metadata are kept', () => {
  expect(
    memoriesToRetain(both, {
      memories: [{ text: 'team fact', scope: 'shared', metadata: { source: 'review' } }],
    }),
  ).toEqual([{ text: 'team fact', scope: 'shared', metadata: { source: 'review' } }]);
});

test('a scope the agent did not declare is refused, naming the entry', () => {
  const failure = refusal(sharedOnly, { memories: ['ok', { text: 'secret', scope: 'private' }] });
  expect(failure).toBeInstanceOf(ApplicationFailure);
  expect(failure.nonRetryable).toBe(true);
  expect(failure.type).toBe('AgentMemoryInvalid');
  expect(failure.message).toMatch(
    /output\.memories\[1\]\.scope: "private" is not one of the agent's memory scopes/,
  );
});

test('malformed memories are refused, naming the field', () => {
  expect(refusal(both, { memories: 'not a list' }).message).toMatch(
    /^agent both returned invalid memories: output\.memories: /,
  );
  expect(refusal(both, { memories: ['   '] }).message).toMatch(
    /output\.memories\[0\]\.text: must not be empty/,
  );
  expect(refusal(both, { memories: [{ text: 'x', scope: 'public' }] }).message).toMatch(
    /output\.memories\[0\]\.scope: /,
  );
  expect(refusal(both, { memories: [{ text: 'x', extra: 1 }] }).message).toMatch(/output\.memories\[0\]/);
});

describe('facts for the knowledge graph', () => {
  const facts = {
    entities: [{ name: 'Forgeworks', description: 'Steel supplier in Lyon.' }],
    relations: [{ source: 'Mireille', target: 'Forgeworks', description: 'Mireille owns Forgeworks.' }],
  };

  test('outputs without facts keep none', () => {
    for (const output of [null, 'text', ['a'], { memories: [] }])
      expect(factsToRetain(both, output)).toBeUndefined();
  });

  test('facts go to the private graph when the agent keeps one, else to shared, or where they say', () => {
    expect(factsToRetain(both, { facts })).toEqual({
      scope: 'private',
      facts: { ...facts, sources: [] },
    });
    expect(factsToRetain(sharedOnly, { facts })?.scope).toBe('shared');
    expect(factsToRetain(both, { facts: { ...facts, scope: 'shared' } })?.scope).toBe('shared');
  });

  test.each([
    [{ facts: { entities: [], relations: [] } }, /output\.facts: must hold at least one entity or relation/],
    [{ facts: { entities: [{ name: '', description: 'x' }] } }, /output\.facts\.entities(\.0|\[0\])\.name/],
    [{ facts: { ...facts, weight: 3 } }, /output\.facts/],
    [
      { facts: { ...facts, scope: 'private' } },
      /output\.facts\.scope: "private" is not one of the agent's memory scopes/,
    ],
  ])('malformed facts are refused for good, naming the field: %j', (output, message) => {
    const agent = (output.facts as { scope?: string }).scope === 'private' ? sharedOnly : both;
    let refusal: unknown;
    try {
      factsToRetain(agent, output);
    } catch (error) {
      refusal = error;
    }
    expect(refusal).toBeInstanceOf(ApplicationFailure);
    expect(refusal).toMatchObject({
      nonRetryable: true,
      type: 'AgentMemoryInvalid',
      message: expect.stringMatching(message),
    });
  });
});
