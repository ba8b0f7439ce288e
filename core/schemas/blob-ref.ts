import { z } from 'zod';

/**
 * What a step returns in place of an output too large for history: a
 * reference into the blob store of the Ray side (ray-tasks/pantheon_runtime/
 * blob_store.py, which makes it and resolves it). `path` is added by a `$step`
 * reference with a path into the referenced output; the Ray side applies it.
 */
export const blobRefSchema = z
  .object({
    $blob: z.string().regex(/^sha256:[0-9a-f]{64}$/),
    bytes: z.number().int().min(0),
    preview: z.string(),
    path: z.string().optional(),
  })
  .strict();

export type BlobRef = z.infer<typeof blobRefSchema>;

export function isBlobRef(value: unknown): value is BlobRef {
  return blobRefSchema.safeParse(value).success;
}
