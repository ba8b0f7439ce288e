/**
 * Reading the blob store from Node (the CLI's `pantheon output`, the codec
 * server). The Ray side writes it (ray-tasks/pantheon_runtime/blob_store.py);
 * the layout is that file's: `<dir>/<first two hex digits>/<sha256 hex>`, the
 * JSON text of the value, named by its hash.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BlobRef } from '../core/schemas/blob-ref';

export class BlobUnavailable extends Error {}

export function blobFile(blobDir: string, ref: BlobRef): string {
  const hex = ref.$blob.slice('sha256:'.length);
  return path.join(blobDir, hex.slice(0, 2), hex);
}

/** The JSON text a reference stands for, checked against its hash. */
export function readBlobText(blobDir: string, ref: BlobRef): string {
  const file = blobFile(blobDir, ref);
  let data: Buffer;
  try {
    data = fs.readFileSync(file);
  } catch {
    throw new BlobUnavailable(
      `the output is kept in the blob store as ${ref.$blob} (${ref.bytes} bytes), which is not in ${blobDir} ` +
        '(set PANTHEON_BLOB_DIR to the store the Ray nodes write)',
    );
  }
  if (crypto.createHash('sha256').update(data).digest('hex') !== ref.$blob.slice('sha256:'.length))
    throw new BlobUnavailable(`${file} does not hold ${ref.$blob}: the store is damaged`);
  return data.toString('utf8');
}
