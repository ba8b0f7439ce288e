import { z } from 'zod';
import type { MemoryScope } from '../../core/schemas/memory';

/**
 * A read grant: what a Ray task's memory handle sends with every read. The
 * memory server signed it with a key only the server holds and builds the
 * isolation filter from it alone, so task code cannot read another project's
 * or another agent's memory through the handle (ray-tasks/pantheon_runtime/memory.py).
 */
export interface MemoryGrant {
  token: string;
  /** Epoch seconds. */
  expiresAt: number;
}

export interface GrantRequest {
  project: string;
  agent: string;
  scopes: MemoryScope[];
  collectionPrefix: string;
  embedder: string;
  /** The store's retention: expired memories stay invisible through the grant too. */
  ttlSeconds?: number;
  expiresInSeconds: number;
}

const grantResponseSchema = z.object({
  result: z.object({ grant: z.string().min(1), expiresAt: z.number() }),
});

/** Asks the memory server (PANTHEON_MEMORY_URL) for a read grant. Needs its API key when it has one. */
export async function requestMemoryGrant(
  server: { url: string; apiKey?: string },
  request: GrantRequest,
): Promise<MemoryGrant> {
  const endpoint = `${server.url.replace(/\/+$/, '')}/pantheon/memory/grants`;
  const response = await fetch(endpoint, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(server.apiKey ? { 'api-key': server.apiKey } : {}),
    },
    body: JSON.stringify(request),
    signal: AbortSignal.timeout(30_000),
  });
  const text = await response.text();
  if (!response.ok)
    throw new Error(`memory server ${endpoint} refused a grant (${response.status}): ${text}`);
  const { result } = grantResponseSchema.parse(JSON.parse(text));
  return { token: result.grant, expiresAt: result.expiresAt };
}
