/**
 * The blob store in an S3-compatible bucket (AWS S3, MinIO, Ceph, Garage…):
 * what stack/blob-store.ts does for a directory, for clusters whose nodes
 * share no disk. The Ray side writes it (ray-tasks/pantheon_runtime/
 * blob_store.py, S3BlobStore) in the directory's layout under the URL's
 * prefix; here it is read (`pantheon output`, the codec server) and collected
 * (`pantheon blobs gc`, the worker's sweep) with the AWS SDK, whose usual
 * environment gives the credentials and the endpoint (AWS_ACCESS_KEY_ID,
 * AWS_SECRET_ACCESS_KEY, AWS_REGION, AWS_ENDPOINT_URL_S3).
 *
 * An object's LastModified plays a file's mtime: a put renews a stored blob by
 * copying it onto itself and writes its pin again. S3 has no rename, so a
 * removal moves the blob aside by copy and delete, then checks its pins and
 * puts it back if a workflow pinned it meanwhile (see removeBlob). Loaded only
 * when a store is named by an s3:// URL, so a worker without one never loads
 * the SDK.
 */
import * as crypto from 'node:crypto';
import {
  CopyObjectCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  S3Client,
  type _Object,
} from '@aws-sdk/client-s3';
import { parseBlobStoreUrl, type BlobRef, type S3Location } from '../core/schemas/blob-ref';
import type { TempFile } from '../core/blob-retention';
import {
  BlobUnavailable,
  applyRetentionPlan,
  BLOB_LAYOUT,
  type BlobStoreAccess,
  type BlobStoreListing,
  type BlobStorePlan,
  type ListedBlob,
  type PinFile,
  type RemovalOutcome,
  type RemovalRecord,
} from './blob-store';

/** Pins read at once while listing (each is a small GET). */
const PIN_READ_CONCURRENCY = 16;

/** A client from the AWS SDK's environment; path-style addressing when an endpoint other than AWS's is named. */
export function s3ClientFromEnv(env: NodeJS.ProcessEnv = process.env): S3Client {
  const endpoint = env.AWS_ENDPOINT_URL_S3 || env.AWS_ENDPOINT_URL || undefined;
  return new S3Client({
    endpoint,
    region: env.AWS_REGION || env.AWS_DEFAULT_REGION || 'us-east-1',
    forcePathStyle: endpoint !== undefined,
    maxAttempts: 5,
    // From `env` when it has them (the SDK alone would read only process.env), else the SDK's chain.
    credentials:
      env.AWS_ACCESS_KEY_ID && env.AWS_SECRET_ACCESS_KEY
        ? {
            accessKeyId: env.AWS_ACCESS_KEY_ID,
            secretAccessKey: env.AWS_SECRET_ACCESS_KEY,
            sessionToken: env.AWS_SESSION_TOKEN || undefined,
          }
        : undefined,
  });
}

function isMissing(err: unknown): boolean {
  const name = (err as { name?: string } | undefined)?.name;
  const status = (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
  return name === 'NoSuchKey' || name === 'NotFound' || status === 404;
}

export class S3BlobStore implements BlobStoreAccess {
  readonly where: string;
  private readonly location: S3Location;

  constructor(
    url: string,
    private readonly client: S3Client = s3ClientFromEnv(),
  ) {
    this.location = parseBlobStoreUrl(url);
    this.where = `s3://${this.location.bucket}${this.location.prefix ? `/${this.location.prefix}` : ''}`;
  }

  close(): void {
    this.client.destroy();
  }

  private key(relative: string): string {
    return this.location.prefix ? `${this.location.prefix}/${relative}` : relative;
  }

  /** The key relative to the store's root. */
  private relative(key: string): string {
    return this.location.prefix ? key.slice(this.location.prefix.length + 1) : key;
  }

  private async getBytes(key: string): Promise<Buffer | undefined> {
    try {
      const got = await this.client.send(new GetObjectCommand({ Bucket: this.location.bucket, Key: key }));
      return Buffer.from(await got.Body!.transformToByteArray());
    } catch (err) {
      if (isMissing(err)) return undefined;
      throw err;
    }
  }

  /**
   * An object's LastModified as a listing gives it (undefined: not there). Read by listing, not
   * HEAD: HEAD's Last-Modified header counts whole seconds, a listing as finely as the store keeps
   * it, and this is compared with what the collection listed.
   */
  private async lastModified(key: string): Promise<number | undefined> {
    const page = await this.client.send(
      new ListObjectsV2Command({ Bucket: this.location.bucket, Prefix: key, MaxKeys: 1 }),
    );
    const found = page.Contents?.[0];
    return found?.Key === key ? (found.LastModified?.getTime() ?? 0) : undefined;
  }

  private async copy(from: string, to: string): Promise<boolean> {
    try {
      await this.client.send(
        new CopyObjectCommand({
          Bucket: this.location.bucket,
          Key: to,
          CopySource: `${this.location.bucket}/${encodeURI(from)}`,
        }),
      );
      return true;
    } catch (err) {
      if (isMissing(err)) return false;
      throw err;
    }
  }

  private async remove(key: string): Promise<void> {
    await this.client.send(new DeleteObjectCommand({ Bucket: this.location.bucket, Key: key }));
  }

  private async *objects(relativePrefix: string): AsyncGenerator<_Object> {
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({
          Bucket: this.location.bucket,
          Prefix: this.key(relativePrefix),
          ContinuationToken: token,
        }),
      );
      yield* page.Contents ?? [];
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async readText(ref: BlobRef): Promise<string> {
    const hex = ref.$blob.slice('sha256:'.length);
    let data: Buffer | undefined;
    try {
      data = await this.getBytes(this.key(`${hex.slice(0, 2)}/${hex}`));
    } catch (err) {
      throw new BlobUnavailable(
        `the output is kept in the blob store ${this.where} as ${ref.$blob} (${ref.bytes} bytes), which cannot be read: ${
          err instanceof Error ? err.message : String(err)
        }`,
      );
    }
    if (data === undefined)
      throw new BlobUnavailable(
        `the output was kept in the blob store as ${ref.$blob} (${ref.bytes} bytes), which is no longer in ` +
          `${this.where}: it was removed after the retention period once its workflow had closed ` +
          '(pantheon blobs gc), or it was never written to this store',
      );
    if (crypto.createHash('sha256').update(data).digest('hex') !== hex)
      throw new BlobUnavailable(
        `${this.where} does not hold ${ref.$blob} under its name: the store is damaged`,
      );
    return data.toString('utf8');
  }

  /** The pins of one blob as they are now. */
  private async readPins(hex: string): Promise<PinFile[]> {
    const listed: _Object[] = [];
    for await (const object of this.objects(`${BLOB_LAYOUT.pinsDir}/${hex.slice(0, 2)}/${hex}/`))
      listed.push(object);
    return this.pinsOf(listed);
  }

  private async pinsOf(objects: readonly _Object[]): Promise<PinFile[]> {
    const pins: PinFile[] = [];
    const queue = objects.filter((o) => BLOB_LAYOUT.hex.test(o.Key!.split('/').pop()!));
    const read = async () => {
      for (let object = queue.shift(); object !== undefined; object = queue.shift()) {
        const body = await this.getBytes(object.Key!);
        if (body !== undefined)
          pins.push({
            file: object.Key!,
            workflowId: body.toString('utf8'),
            mtimeMs: object.LastModified?.getTime() ?? 0,
          });
      }
    };
    await Promise.all(Array.from({ length: Math.min(PIN_READ_CONCURRENCY, queue.length) }, read));
    return pins.sort((a, b) => a.file.localeCompare(b.file));
  }

  async list(): Promise<BlobStoreListing> {
    const blobs = new Map<string, { size: number; mtimeMs: number }>();
    const pinObjects = new Map<string, _Object[]>();
    const tempFiles: TempFile[] = [];
    for await (const object of this.objects('')) {
      const parts = this.relative(object.Key!).split('/');
      const mtimeMs = object.LastModified?.getTime() ?? 0;
      if (parts.length === 2 && BLOB_LAYOUT.shard.test(parts[0]!)) {
        const [shard, name] = parts as [string, string];
        if (name.startsWith(BLOB_LAYOUT.removalPrefix)) tempFiles.push({ path: object.Key!, mtimeMs });
        else if (BLOB_LAYOUT.hex.test(name) && name.startsWith(shard))
          blobs.set(name, { size: object.Size ?? 0, mtimeMs });
      } else if (parts.length === 4 && parts[0] === BLOB_LAYOUT.pinsDir && BLOB_LAYOUT.hex.test(parts[2]!)) {
        const forBlob = pinObjects.get(parts[2]!) ?? [];
        forBlob.push(object);
        pinObjects.set(parts[2]!, forBlob);
      }
    }
    const listing: BlobStoreListing = { blobs: [], danglingPins: [], tempFiles };
    for (const [hex, blob] of blobs) {
      const pins = await this.pinsOf(pinObjects.get(hex) ?? []);
      listing.blobs.push({
        digest: `sha256:${hex}`,
        bytes: blob.size,
        mtimeMs: blob.mtimeMs,
        pinnedBy: pins.map((p) => p.workflowId),
        pins,
      });
    }
    for (const [hex, objects] of pinObjects) {
      if (blobs.has(hex)) continue;
      const pins = await this.pinsOf(objects);
      listing.danglingPins.push({
        digest: `sha256:${hex}`,
        mtimeMs: Math.max(0, ...pins.map((p) => p.mtimeMs)),
        pinnedBy: pins.map((p) => p.workflowId),
        pins,
      });
    }
    return listing;
  }

  /** Removes the listed pins that are unchanged; false when something stayed (a pin new or written again). */
  private async removePins(hex: string, listed: readonly PinFile[]): Promise<boolean> {
    const before = new Map(listed.map((p) => [p.file, p.mtimeMs]));
    let all = true;
    for (const pin of await this.readPins(hex)) {
      if (before.get(pin.file) === pin.mtimeMs) await this.remove(pin.file);
      else all = false;
    }
    return all;
  }

  private async pinsUnchanged(hex: string, listed: readonly PinFile[]): Promise<boolean> {
    const before = new Map(listed.map((p) => [p.file, p.mtimeMs]));
    return (await this.readPins(hex)).every((p) => before.get(p.file) === p.mtimeMs);
  }

  /**
   * Removes one blob, then its pins, racing safely with a put of the same content (the directory's
   * rule, stack/blob-store.ts removeBlob, with copy and delete for the rename): a blob renewed since
   * the listing is left; otherwise it is copied aside and deleted, and only then are its pins
   * checked. A put pins before it writes, so a put that came before the check shows in the pins and
   * the blob is put back from aside if the put's own write did not already; a put after the check
   * finds no blob and writes it. LastModified is as fine as the store keeps it (milliseconds on
   * MinIO, seconds on AWS): a workflow writing its own pin again within the same second as the
   * listing is the one change the check can miss, and only for a workflow already closed longer
   * than the retention period.
   */
  private async removeBlob(blob: ListedBlob): Promise<RemovalOutcome> {
    const hex = blob.digest.slice('sha256:'.length);
    const key = this.key(`${hex.slice(0, 2)}/${hex}`);
    const modified = await this.lastModified(key);
    if (modified === undefined) return 'gone';
    if (modified !== blob.mtimeMs) return 'in-use';
    const aside = this.key(
      `${hex.slice(0, 2)}/${BLOB_LAYOUT.removalPrefix}${hex}-${crypto.randomBytes(4).toString('hex')}`,
    );
    if (!(await this.copy(key, aside))) return 'gone';
    await this.remove(key);
    if (!(await this.pinsUnchanged(hex, blob.pins))) {
      if ((await this.lastModified(key)) === undefined) await this.copy(aside, key);
      await this.remove(aside);
      return 'in-use';
    }
    await this.remove(aside);
    await this.removePins(hex, blob.pins);
    return 'removed';
  }

  apply(plan: BlobStorePlan): Promise<RemovalRecord[]> {
    return applyRetentionPlan(plan, {
      blob: (blob) => this.removeBlob(blob),
      danglingPins: async (dangling) => {
        const hex = dangling.digest.slice('sha256:'.length);
        // A put writes the pin before the blob: a blob there now means a write finished since the listing.
        const written = (await this.lastModified(this.key(`${hex.slice(0, 2)}/${hex}`))) !== undefined;
        return !written && (await this.removePins(hex, dangling.pins));
      },
      tempFile: async (temp) => {
        if ((await this.lastModified(temp.path)) === undefined) return undefined;
        await this.remove(temp.path);
        return 0;
      },
    });
  }
}
