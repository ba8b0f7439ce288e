/**
 * Embedders turn memory texts into vectors. The collection a memory lives in
 * is named after the embedder and its dimension, so switching embedders never
 * mixes vectors from two models in one collection.
 */
export interface Embedder {
  /** Stable name, part of the collection name: lowercase letters, digits and dashes. */
  readonly name: string;
  readonly dimension: number;
  /**
   * One vector of `dimension` finite numbers per text, in order. `kind` says
   * whether the texts are what is searched (`passage`: memories) or what is
   * searched with (`query`); asymmetric models such as e5 embed them differently.
   */
  embed(texts: readonly string[], kind: EmbedKind): Promise<number[][]>;
}

export type EmbedKind = 'query' | 'passage';

export const EMBEDDER_NAME_PATTERN = /^[a-z0-9][a-z0-9-]{0,63}$/;

/**
 * The lexical option (PANTHEON_MEMORY_EMBEDDER=hash-ngram-v1): feature hashing,
 * no model, no service, no download. It is a lexical embedder — texts that share words and word fragments come out close,
 * paraphrases with different words do not. Honest name: `hash-ngram-v1`.
 *
 * The algorithm is implemented identically in Python
 * (ray-tasks/pantheon_runtime/memory.py) and a shared fixture
 * (test/fixtures/memory-embedder-vectors.json) proves both give the same
 * vector. Any change to it is a new embedder: bump the version in the name.
 *
 *  1. Normalise: Unicode NFKC, then lowercase.
 *  2. Tokens: maximal runs of letters, digits and combining marks.
 *  3. Features, in order of appearance: `w:<token>` (weight 1), `c:<trigram>`
 *     for each 3-code-point window of `<token>` padded with `<` and `>`
 *     (weight 0.5), `b:<token> <next token>` (weight 0.5).
 *  4. Each distinct feature's weights are summed; its value is the square
 *     root of the sum, so a repeated word counts less than linearly.
 *  5. Hash: FNV-1a (32-bit) of the feature's UTF-8 bytes, then the murmur3
 *     finaliser. Bucket = hash mod dimension; sign = top bit of the hash
 *     (signed hashing keeps collisions from adding up).
 *  6. Add into the bucket in order of first appearance, then divide by the L2 norm.
 *
 * Only +, *, / and sqrt on doubles are used, all correctly rounded in both
 * JavaScript and Python, so the two implementations agree bit for bit.
 */
export class HashNgramEmbedder implements Embedder {
  readonly name = 'hash-ngram-v1';

  constructor(readonly dimension = 384) {
    if (!Number.isInteger(dimension) || dimension < 2 || dimension > 65536) {
      throw new RangeError(`dimension must be an integer from 2 to 65536, got ${dimension}`);
    }
  }

  /** Symmetric: queries and passages are embedded alike. */
  async embed(texts: readonly string[], _kind?: EmbedKind): Promise<number[][]> {
    return texts.map((text) => this.embedOne(text));
  }

  /** Synchronous form of `embed` for one text. All zeros when the text has no words. */
  embedOne(text: string): number[] {
    const weights = hashNgramFeatures(text);
    const vector = new Array<number>(this.dimension).fill(0);
    for (const [feature, weight] of weights) {
      const hash = featureHash(feature);
      const bucket = hash % this.dimension;
      const sign = hash >= 0x80000000 ? -1 : 1;
      vector[bucket] = (vector[bucket] ?? 0) + sign * Math.sqrt(weight);
    }
    let sumOfSquares = 0;
    for (const value of vector) sumOfSquares += value * value;
    if (sumOfSquares === 0) return vector;
    const norm = Math.sqrt(sumOfSquares);
    return vector.map((value) => value / norm);
  }
}

const TOKEN = /[\p{L}\p{N}\p{M}]+/gu;

/** Features of step 3 with their summed weights, in order of first appearance. */
export function hashNgramFeatures(text: string): Map<string, number> {
  const tokens = text.normalize('NFKC').toLowerCase().match(TOKEN) ?? [];
  const weights = new Map<string, number>();
  const add = (feature: string, weight: number) => weights.set(feature, (weights.get(feature) ?? 0) + weight);
  tokens.forEach((token, index) => {
    add(`w:${token}`, 1);
    // Code points, not UTF-16 units, so that astral characters are one unit as in Python.
    const padded = Array.from(`<${token}>`);
    for (let start = 0; start + 3 <= padded.length; start++) {
      add(`c:${padded.slice(start, start + 3).join('')}`, 0.5);
    }
    const next = tokens[index + 1];
    if (next !== undefined) add(`b:${token} ${next}`, 0.5);
  });
  return weights;
}

const utf8 = new TextEncoder();

/** FNV-1a 32-bit over UTF-8, then murmur3's fmix32 to spread the bits. Unsigned. */
export function featureHash(feature: string): number {
  let hash = 0x811c9dc5;
  for (const byte of utf8.encode(feature)) {
    hash = Math.imul(hash ^ byte, 0x01000193);
  }
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}
