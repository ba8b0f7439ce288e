import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { featureHash, hashNgramFeatures, HashNgramEmbedder } from '../../activities/memory/embedder';
import { REPO_ROOT, VENV_PYTHON } from '../helpers/qdrant-server';

interface Fixture {
  embedder: string;
  dimension: number;
  cases: { text: string; nonZero: [number, number][] }[];
}

const fixture = JSON.parse(
  readFileSync(path.join(REPO_ROOT, 'test', 'fixtures', 'memory-embedder-vectors.json'), 'utf8'),
) as Fixture;

const embedder = new HashNgramEmbedder();

function nonZero(vector: number[]): [number, number][] {
  return vector.flatMap((value, index): [number, number][] => (value === 0 ? [] : [[index, value]]));
}

/** Runs Python `code` with `request` (parsed from stdin) and returns what it dumps to stdout as JSON. */
function pythonRun(code: string, request: unknown): unknown {
  const script = ['import json, sys', 'request = json.load(sys.stdin)', code].join('\n');
  const result = spawnSync(VENV_PYTHON, ['-c', script], {
    input: JSON.stringify(request),
    env: { ...process.env, PYTHONPATH: path.join(REPO_ROOT, 'ray-tasks') },
    encoding: 'utf8',
    maxBuffer: 64 * 1024 * 1024,
  });
  if (result.status !== 0) throw new Error(`python failed (${result.status}): ${result.stderr}`);
  return JSON.parse(result.stdout);
}

/** Embeds `texts` with the Python implementation (ray-tasks/pantheon_runtime/memory.py). */
function pythonEmbed(texts: string[], dimension: number): number[][] {
  const code = [
    'from pantheon_runtime.memory import HashNgramEmbedder',
    'json.dump(HashNgramEmbedder(request["dimension"]).embed(request["texts"]), sys.stdout)',
  ].join('\n');
  return pythonRun(code, { texts, dimension }) as number[][];
}

function cosine(a: number[], b: number[]): number {
  return a.reduce((sum, value, index) => sum + value * (b[index] ?? 0), 0);
}

describe('HashNgramEmbedder (hash-ngram-v1)', () => {
  it('is named after what it is, with its dimension', () => {
    expect(embedder.name).toBe(fixture.embedder);
    expect(embedder.dimension).toBe(fixture.dimension);
  });

  it('reproduces the shared fixture vectors exactly', () => {
    for (const testCase of fixture.cases) {
      expect({ text: testCase.text, nonZero: nonZero(embedder.embedOne(testCase.text)) }).toEqual(testCase);
    }
  });

  it('gives bit-identical vectors in Python for the fixture texts', () => {
    const vectors = pythonEmbed(
      fixture.cases.map((c) => c.text),
      fixture.dimension,
    );
    vectors.forEach((vector, index) => {
      expect(nonZero(vector)).toEqual(fixture.cases[index]?.nonZero);
    });
  });

  it('gives bit-identical vectors in Python for arbitrary Unicode text', () => {
    const texts = fc.sample(fc.string({ unit: 'grapheme', minLength: 1, maxLength: 60 }), {
      numRuns: 300,
      seed: 42,
    });
    texts.push(...fc.sample(fc.string({ unit: 'binary', maxLength: 40 }), { numRuns: 100, seed: 7 }));
    // Characters unassigned in either Unicode database (Python 3.11 ships Unicode 14,
    // Node 20 a newer one) are classified differently; the contract excludes them.
    const unassignedInPython = new Set(
      pythonRun(
        'import unicodedata; json.dump(sorted({c for t in request["texts"] for c in t if unicodedata.category(c) == "Cn"}), sys.stdout)',
        { texts },
      ) as string[],
    );
    const comparable = texts.filter(
      (text) => !/\p{Cn}/u.test(text) && ![...text].some((c) => unassignedInPython.has(c)),
    );
    expect(comparable.length).toBeGreaterThan(texts.length / 2);
    const fromPython = pythonEmbed(comparable, 97);
    const small = new HashNgramEmbedder(97);
    comparable.forEach((text, index) => {
      expect({ text, vector: fromPython[index] }).toEqual({ text, vector: small.embedOne(text) });
    });
  });

  it('returns unit vectors of its dimension for any text with a word', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'grapheme', maxLength: 80 }), (prefix) => {
        const vector = embedder.embedOne(`${prefix} memory`);
        expect(vector).toHaveLength(384);
        expect(Math.abs(Math.sqrt(cosine(vector, vector)) - 1)).toBeLessThan(1e-12);
      }),
    );
  });

  it('returns the zero vector for a text without letters or digits', () => {
    expect(embedder.embedOne(' ... !? ').every((value) => value === 0)).toBe(true);
  });

  it('ignores case and Unicode compatibility forms', () => {
    const reference = embedder.embedOne('café supplier');
    expect(embedder.embedOne('CAFÉ SUPPLIER')).toEqual(reference);
    expect(embedder.embedOne('cafe\u0301 supplier')).toEqual(reference);
    expect(embedder.embedOne('ｃａｆé ｓｕｐｐｌｉｅｒ')).toEqual(reference);
  });

  it('places texts that share words closer than unrelated texts', () => {
    const memory = embedder.embedOne('The supplier in Rotterdam ships on Tuesdays');
    const related = embedder.embedOne('when does the Rotterdam supplier ship?');
    const unrelated = embedder.embedOne('quarterly marketing budget for the new logo');
    expect(cosine(memory, related)).toBeGreaterThan(0.4);
    expect(cosine(memory, related)).toBeGreaterThan(cosine(memory, unrelated) + 0.3);
  });

  it('counts repeated words sublinearly', () => {
    const features = hashNgramFeatures('ship ship ship ship');
    expect(features.get('w:ship')).toBe(4);
    expect(features.get('b:ship ship')).toBe(1.5);
    expect(features.get('c:<sh')).toBe(2);
  });

  it('hashes features to unsigned 32-bit values', () => {
    fc.assert(
      fc.property(fc.string(), (feature) => {
        const hash = featureHash(feature);
        expect(Number.isInteger(hash) && hash >= 0 && hash <= 0xffffffff).toBe(true);
      }),
    );
  });

  it('refuses a dimension outside 2..65536', () => {
    expect(() => new HashNgramEmbedder(1)).toThrow(RangeError);
    expect(() => new HashNgramEmbedder(1.5)).toThrow(RangeError);
    expect(() => new HashNgramEmbedder(65537)).toThrow(RangeError);
  });
});
