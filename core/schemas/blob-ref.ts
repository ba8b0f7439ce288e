import { z } from 'zod';
import { valueAtPath } from './json-values';

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

/**
 * `value` with every blob reference whose data `read` returns replaced by that data (at the
 * reference's path); a reference `read` declines (too large, missing) stays as it is. Returns the
 * same object when nothing was replaced.
 */
export function expandBlobRefs(value: unknown, read: (ref: BlobRef) => unknown): unknown {
  if (isBlobRef(value)) {
    const data = read(value);
    return data === undefined ? value : valueAtPath(data, value.path);
  }
  if (Array.isArray(value)) {
    const items = value.map((item) => expandBlobRefs(item, read));
    return items.some((item, i) => item !== value[i]) ? items : value;
  }
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value).map(([k, v]) => [k, expandBlobRefs(v, read)] as const);
    return entries.some(([k, v]) => v !== (value as Record<string, unknown>)[k])
      ? Object.fromEntries(entries)
      : value;
  }
  return value;
}

/**
 * An S3-compatible blob store: `s3://bucket` or `s3://bucket/prefix` (the bucket by S3's naming
 * rules; the prefix in plain key characters, so every store key under it is predictable).
 */
export const blobStoreUrlSchema = z
  .string()
  .regex(
    /^s3:\/\/[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](\/[A-Za-z0-9._-]+)*\/?$/,
    'an s3://bucket[/prefix] URL (bucket: 3 to 63 lowercase letters, digits, dots and hyphens; prefix: letters, digits, ".", "_", "-" and "/")',
  );

export interface S3Location {
  bucket: string;
  /** Without leading or trailing slashes; "" for the bucket's root. */
  prefix: string;
}

export function parseBlobStoreUrl(url: string): S3Location {
  const [bucket = '', ...rest] = blobStoreUrlSchema.parse(url).slice('s3://'.length).split('/');
  return { bucket, prefix: rest.filter(Boolean).join('/') };
}
