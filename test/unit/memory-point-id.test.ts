import { spawnSync } from 'node:child_process';
import fc from 'fast-check';
import {
  MEMORY_ID_NAMESPACE,
  memoryPointId,
  uuidV5,
  type MemoryIdentity,
} from '../../activities/memory/point-id';
import { VENV_PYTHON } from '../helpers/qdrant-server';

const DNS_NAMESPACE = '6ba7b810-9dad-11d1-80b4-00c04fd430c8';
const UUID_V5 = /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

const identity: MemoryIdentity = {
  project: 'acme',
  scope: 'private',
  agent: 'researcher',
  pipeline: 'due-diligence',
  step: 'collect',
  workflowId: 'pipeline-1234',
  stepId: 'collect',
  text: 'The supplier ships on Tuesdays.',
};

describe('uuidV5', () => {
  it('matches the RFC example value', () => {
    expect(uuidV5('python.org', DNS_NAMESPACE)).toBe('886313e1-3b8a-5372-9b90-0c9aee199e5d');
  });

  it("matches Python's uuid.uuid5 for arbitrary names", () => {
    const names = fc.sample(fc.string({ unit: 'grapheme', maxLength: 50 }), { numRuns: 100, seed: 3 });
    const result = spawnSync(
      VENV_PYTHON,
      [
        '-c',
        'import json,sys,uuid; r=json.load(sys.stdin); print(json.dumps([str(uuid.uuid5(uuid.UUID(r["ns"]), n)) for n in r["names"]]))',
      ],
      { input: JSON.stringify({ ns: MEMORY_ID_NAMESPACE, names }), encoding: 'utf8' },
    );
    expect(result.status).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual(names.map((name) => uuidV5(name, MEMORY_ID_NAMESPACE)));
  });

  it('refuses a namespace that is not a UUID', () => {
    expect(() => uuidV5('x', 'not-a-uuid')).toThrow(RangeError);
  });
});

describe('memoryPointId', () => {
  it('is a version 5 UUID and the same for the same write', () => {
    const id = memoryPointId(identity);
    expect(id).toMatch(UUID_V5);
    expect(memoryPointId({ ...identity })).toBe(id);
  });

  it('changes when any part of the identity changes', () => {
    const keys = Object.keys(identity) as (keyof MemoryIdentity)[];
    fc.assert(
      fc.property(fc.constantFrom(...keys), fc.string({ minLength: 1 }), (key, value) => {
        fc.pre(key !== 'scope' && value !== identity[key]);
        expect(memoryPointId({ ...identity, [key]: value })).not.toBe(memoryPointId(identity));
      }),
    );
    expect(memoryPointId({ ...identity, scope: 'shared' })).not.toBe(memoryPointId(identity));
  });

  it('keeps field boundaries apart', () => {
    const a = memoryPointId({ ...identity, project: 'a b', agent: 'c' });
    const b = memoryPointId({ ...identity, project: 'a', agent: 'b c' });
    expect(a).not.toBe(b);
  });
});
