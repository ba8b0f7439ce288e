import type { Schemas } from '@qdrant/js-client-rest';
import fc from 'fast-check';
import { buildProjectSelection, buildReadFilter, type ReadScope } from '../../activities/memory/filters';
import type { MemoryScope } from '../../core/schemas/memory';

type Payload = { project: string; scope: MemoryScope; agent: string; pipeline: string; createdAtMs: number };

const asList = <T>(value: T | T[] | null | undefined | Record<string, unknown>): T[] =>
  value === undefined || value === null ? [] : Array.isArray(value) ? value : [value as T];

/**
 * Qdrant's filter semantics for the conditions the store uses (match value,
 * integer range, nested must/should), so the properties below check what the
 * filter selects, not how it is spelled.
 */
function matches(filter: Schemas['Filter'], payload: Payload): boolean {
  const holds = (condition: Schemas['Condition']): boolean => {
    if ('key' in condition && typeof condition.key === 'string') {
      const value = payload[condition.key as keyof Payload];
      const match = condition.match as { value?: unknown } | undefined;
      if (match && 'value' in match) return value === match.value;
      const range = condition.range as { gte?: number; lt?: number } | undefined;
      if (range && typeof value === 'number') {
        return (
          (range.gte === undefined || value >= range.gte) && (range.lt === undefined || value < range.lt)
        );
      }
      throw new Error(`condition not understood: ${JSON.stringify(condition)}`);
    }
    return matches(condition as Schemas['Filter'], payload);
  };
  const must = asList<Schemas['Condition']>(filter.must);
  const should = asList<Schemas['Condition']>(filter.should);
  return must.every(holds) && (should.length === 0 || should.some(holds));
}

const name = fc.constantFrom('x', 'y', 'a', 'b', 'p1', 'p2');
const scope = fc.constantFrom<MemoryScope>('shared', 'private');
const payload = fc.record({
  project: name,
  scope,
  agent: name,
  pipeline: name,
  createdAtMs: fc.integer({ min: 0, max: 100 }),
});
const read = fc.record(
  {
    project: name,
    agent: name,
    scopes: fc.uniqueArray(scope, { minLength: 1, maxLength: 2 }),
    pipeline: fc.option(name, { nil: undefined }),
    notBeforeMs: fc.option(fc.integer({ min: 0, max: 100 }), { nil: undefined }),
  },
  { requiredKeys: ['project', 'agent', 'scopes'] },
);

/** The isolation rule, stated directly. */
function readable(reader: ReadScope, point: Payload): boolean {
  return (
    point.project === reader.project &&
    reader.scopes.includes(point.scope) &&
    (point.scope === 'shared' || point.agent === reader.agent) &&
    (reader.pipeline === undefined || point.pipeline === reader.pipeline) &&
    (reader.notBeforeMs === undefined || point.createdAtMs >= reader.notBeforeMs)
  );
}

describe('buildReadFilter', () => {
  it('selects exactly what the isolation rule allows', () => {
    fc.assert(
      fc.property(read, payload, (reader, point) => {
        expect(matches(buildReadFilter(reader), point)).toBe(readable(reader, point));
      }),
      { numRuns: 2000 },
    );
  });

  it('never lets an agent read another agent’s private memory or another project', () => {
    fc.assert(
      fc.property(read, payload, (reader, point) => {
        fc.pre(
          point.project !== reader.project || (point.scope === 'private' && point.agent !== reader.agent),
        );
        expect(matches(buildReadFilter(reader), point)).toBe(false);
      }),
    );
  });

  it('puts the project condition first', () => {
    fc.assert(
      fc.property(read, (reader) => {
        const [first] = asList<Schemas['Condition']>(buildReadFilter(reader).must);
        expect(first).toEqual({ key: 'project', match: { value: reader.project } });
      }),
    );
  });

  it('refuses a private read without the reading agent, and a read without scopes', () => {
    expect(() => buildReadFilter({ project: 'x', scopes: ['private'] })).toThrow(/agent/);
    expect(() => buildReadFilter({ project: 'x', scopes: [] })).toThrow(/scope/);
    expect(() => buildReadFilter({ project: 'x', scopes: ['shared'] })).not.toThrow();
  });
});

describe('buildProjectSelection', () => {
  it('selects within the project only, narrowed by every given field', () => {
    fc.assert(
      fc.property(
        name,
        fc.option(name, { nil: undefined }),
        fc.option(name, { nil: undefined }),
        fc.option(scope, { nil: undefined }),
        payload,
        (project, agent, pipeline, selectedScope, point) => {
          const selected = matches(
            buildProjectSelection({ project, agent, pipeline, scope: selectedScope }),
            point,
          );
          const expected =
            point.project === project &&
            (agent === undefined || point.agent === agent) &&
            (pipeline === undefined || point.pipeline === pipeline) &&
            (selectedScope === undefined || point.scope === selectedScope);
          expect(selected).toBe(expected);
        },
      ),
    );
  });
});
