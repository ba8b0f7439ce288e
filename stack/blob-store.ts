/**
 * The blob store from Node: reading it (the CLI's `pantheon output`, the codec
 * server) and removing what its retention allows (`pantheon blobs gc`). The
 * Ray side writes it (ray-tasks/pantheon_runtime/blob_store.py); the layout is
 * that file's:
 *
 *   <dir>/<hex[:2]>/<hex>                                the JSON text, named by its SHA-256
 *   <dir>/pins/<hex[:2]>/<hex>/<sha256 of workflow id>   a pin: that workflow wrote the blob
 *   .incoming-* beside either                            a write in progress (or abandoned)
 *
 * What to remove is decided by core/blob-retention.ts; this file lists the
 * store, asks Temporal for the state of the pinning workflows (only
 * `temporalWorkflowStates` touches Temporal) and removes files. The same
 * layout in an S3-compatible bucket is stack/s3-blob-store.ts; `openBlobStore`
 * picks one from the settings (PANTHEON_BLOB_URL, else PANTHEON_BLOB_DIR).
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { Client } from '@temporalio/client';
import {
  decideBlobRetention,
  type BlobRetentionPlan,
  type DanglingPins,
  type StoredBlob,
  type TempFile,
  type WorkflowState,
} from '../core/blob-retention';
import type { BlobRef } from '../core/schemas/blob-ref';

export class BlobUnavailable extends Error {}

/** Names of the layout, shared by both stores. */
export const BLOB_LAYOUT = {
  pinsDir: 'pins',
  /** A write in progress (directory only: an S3 put is atomic). */
  writePrefix: '.incoming-',
  /** A blob being removed is first moved to this (see removeBlob). */
  removalPrefix: '.removing-',
  hex: /^[0-9a-f]{64}$/,
  shard: /^[0-9a-f]{2}$/,
} as const;
const PINS_DIR = BLOB_LAYOUT.pinsDir;
const WRITE_PREFIX = BLOB_LAYOUT.writePrefix;
const REMOVAL_PREFIX = BLOB_LAYOUT.removalPrefix;
const HEX = BLOB_LAYOUT.hex;
const SHARD = BLOB_LAYOUT.shard;

/** A blob store, whichever kind: what reading and collecting need. */
export interface BlobStoreAccess {
  /** Where it is, for messages: a directory, or s3://bucket/prefix. */
  readonly where: string;
  /** The JSON text a reference stands for, checked against its hash; BlobUnavailable when it cannot be had. */
  readText(ref: BlobRef): Promise<string>;
  /** What the store holds now. */
  list(): Promise<BlobStoreListing>;
  /** Removes what `plan` decided to remove. */
  apply(plan: BlobStorePlan): Promise<RemovalRecord[]>;
  close?(): void;
}

/** The directory store (the embedded default). */
export function directoryBlobStore(blobDir: string): BlobStoreAccess {
  return {
    where: blobDir,
    readText: (ref) => Promise.resolve().then(() => readBlobText(blobDir, ref)),
    list: () => Promise.resolve().then(() => listBlobStore(blobDir)),
    apply: (plan) => applyBlobRetention(blobDir, plan),
  };
}

/** Where a process finds the store: an S3-compatible URL, else a directory. */
export interface BlobStoreSettings {
  blobUrl?: string;
  blobDir?: string;
}

/** The store the settings name (the S3 one loads the AWS SDK, only then); undefined when none is named. */
export async function openBlobStore(settings: BlobStoreSettings): Promise<BlobStoreAccess | undefined> {
  if (settings.blobUrl) {
    // The pinned SDK runs on Node 20; its warning is about releases after it (package.json pins it).
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    // Required here, not imported above: a process without an S3 store never loads the AWS SDK. (A
    // dynamic import() of a .ts file is not resolved when the CLI runs under tsx/cjs.)
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { S3BlobStore } = require('./s3-blob-store') as typeof import('./s3-blob-store');
    return new S3BlobStore(settings.blobUrl);
  }
  return settings.blobDir ? directoryBlobStore(settings.blobDir) : undefined;
}

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
  } catch (err) {
    if (!isMissing(err))
      throw new BlobUnavailable(
        `the output is kept in the blob store as ${ref.$blob} (${ref.bytes} bytes), which cannot be read: ${
          err instanceof Error ? err.message : String(err)
        }`,
      );
    throw new BlobUnavailable(
      fs.existsSync(blobDir)
        ? `the output was kept in the blob store as ${ref.$blob} (${ref.bytes} bytes), which is no longer in ` +
            `${blobDir}: it was removed after the retention period once its workflow had closed ` +
            '(pantheon blobs gc), or it was never written to this store'
        : `the output is kept in the blob store as ${ref.$blob} (${ref.bytes} bytes), and there is no store at ` +
            `${blobDir} (set PANTHEON_BLOB_DIR to the store the Ray nodes write)`,
    );
  }
  if (crypto.createHash('sha256').update(data).digest('hex') !== ref.$blob.slice('sha256:'.length))
    throw new BlobUnavailable(`${file} does not hold ${ref.$blob}: the store is damaged`);
  return data.toString('utf8');
}

/** A pin file as listed: a removal acts on it only if it is still the same (unchanged mtime). */
export interface PinFile {
  file: string;
  workflowId: string;
  mtimeMs: number;
}

export interface ListedBlob extends StoredBlob {
  pins: PinFile[];
}

export interface ListedDanglingPins extends DanglingPins {
  pins: PinFile[];
}

export interface BlobStoreListing {
  blobs: ListedBlob[];
  danglingPins: ListedDanglingPins[];
  tempFiles: TempFile[];
}

export type BlobStorePlan = BlobRetentionPlan<ListedBlob, ListedDanglingPins, TempFile>;

/** The entries of a directory, or none when it is not there (a store never written, a race with a removal). */
function entries(dir: string): fs.Dirent[] {
  try {
    return fs.readdirSync(dir, { withFileTypes: true });
  } catch (err) {
    if (isMissing(err)) return [];
    throw err;
  }
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

function statOrUndefined(file: string): fs.Stats | undefined {
  try {
    return fs.statSync(file);
  } catch (err) {
    if (isMissing(err)) return undefined;
    throw err;
  }
}

function isTemporary(name: string): boolean {
  return name.startsWith(WRITE_PREFIX) || name.startsWith(REMOVAL_PREFIX);
}

function pinDir(blobDir: string, hex: string): string {
  return path.join(blobDir, PINS_DIR, hex.slice(0, 2), hex);
}

/** The pins of one blob as they are now; temporary files in the pin directory go to `temps`. */
function readPins(blobDir: string, hex: string, temps?: TempFile[]): PinFile[] {
  const dir = pinDir(blobDir, hex);
  const pins: PinFile[] = [];
  for (const entry of entries(dir)) {
    const file = path.join(dir, entry.name);
    if (isTemporary(entry.name)) {
      const stat = statOrUndefined(file);
      if (stat) temps?.push({ path: file, mtimeMs: stat.mtimeMs });
      continue;
    }
    if (!HEX.test(entry.name)) continue;
    try {
      const stat = fs.statSync(file);
      pins.push({ file, workflowId: fs.readFileSync(file, 'utf8'), mtimeMs: stat.mtimeMs });
    } catch (err) {
      if (!isMissing(err)) throw err;
    }
  }
  return pins;
}

/** What the store holds now: blobs with their pins, pins without a blob, temporary files. */
export function listBlobStore(blobDir: string): BlobStoreListing {
  const blobs: ListedBlob[] = [];
  const tempFiles: TempFile[] = [];
  const seen = new Set<string>();
  for (const shard of entries(blobDir)) {
    if (!shard.isDirectory() || !SHARD.test(shard.name)) continue;
    const shardDir = path.join(blobDir, shard.name);
    for (const entry of entries(shardDir)) {
      const file = path.join(shardDir, entry.name);
      const stat = entry.isFile() ? statOrUndefined(file) : undefined;
      if (!stat) continue;
      if (isTemporary(entry.name)) tempFiles.push({ path: file, mtimeMs: stat.mtimeMs });
      else if (HEX.test(entry.name) && entry.name.startsWith(shard.name)) {
        const pins = readPins(blobDir, entry.name, tempFiles);
        seen.add(entry.name);
        blobs.push({
          digest: `sha256:${entry.name}`,
          bytes: stat.size,
          mtimeMs: stat.mtimeMs,
          pinnedBy: pins.map((p) => p.workflowId),
          pins,
        });
      }
    }
  }
  const danglingPins: ListedDanglingPins[] = [];
  const pinsRoot = path.join(blobDir, PINS_DIR);
  for (const shard of entries(pinsRoot)) {
    if (!shard.isDirectory() || !SHARD.test(shard.name)) continue;
    for (const entry of entries(path.join(pinsRoot, shard.name))) {
      if (!entry.isDirectory() || !HEX.test(entry.name) || seen.has(entry.name)) continue;
      // A blob written after the listing of its shard above is not dangling: it is listed next time.
      if (fs.existsSync(path.join(blobDir, entry.name.slice(0, 2), entry.name))) continue;
      const pins = readPins(blobDir, entry.name, tempFiles);
      danglingPins.push({
        digest: `sha256:${entry.name}`,
        mtimeMs: Math.max(0, ...pins.map((p) => p.mtimeMs)),
        pinnedBy: pins.map((p) => p.workflowId),
        pins,
      });
    }
  }
  return { blobs, danglingPins, tempFiles };
}

/** The state of each of a set of workflows: a function, so tests can answer without Temporal. */
export type WorkflowStateLookup = (workflowIds: readonly string[]) => Promise<Map<string, WorkflowState>>;

/** Asks at most this many describes of Temporal at once. */
const DESCRIBE_CONCURRENCY = 8;

/**
 * Workflow states from Temporal: the latest run of each id. Open unless Temporal says it closed
 * and when; unknown when Temporal no longer has it. Any other error (Temporal unreachable)
 * throws: a collection that cannot ask removes nothing.
 */
export function temporalWorkflowStates(client: Client): WorkflowStateLookup {
  const describe = async (workflowId: string): Promise<WorkflowState> => {
    try {
      const described = await client.workflow.getHandle(workflowId).describe();
      return described.status.name !== 'RUNNING' && described.closeTime
        ? { state: 'closed', closeTimeMs: described.closeTime.getTime() }
        : { state: 'open' };
    } catch (err) {
      if (err instanceof Error && err.name === 'WorkflowNotFoundError') return { state: 'unknown' };
      throw err;
    }
  };
  return async (workflowIds) => {
    const states = new Map<string, WorkflowState>();
    const queue = [...new Set(workflowIds)];
    const worker = async () => {
      for (let id = queue.shift(); id !== undefined; id = queue.shift()) states.set(id, await describe(id));
    };
    await Promise.all(Array.from({ length: Math.min(DESCRIBE_CONCURRENCY, queue.length) }, worker));
    return states;
  };
}

/** The decisions for what `listing` holds, with the states `lookup` gives. */
export async function planBlobRetention(
  listing: BlobStoreListing,
  lookup: WorkflowStateLookup,
  clock: { nowMs: number; retentionMs: number },
): Promise<BlobStorePlan> {
  const pinning = [...listing.blobs, ...listing.danglingPins].flatMap((b) => b.pinnedBy);
  const workflows = await lookup(pinning);
  return decideBlobRetention({ ...listing, workflows, ...clock });
}

export type RemovalOutcome =
  /** Removed, blob then pins. */
  | 'removed'
  /** Someone else (another collector) removed it first. */
  | 'gone'
  /** Used again since it was listed (a new pin or write): put back, or left alone. */
  | 'in-use';

export interface RemovalRecord {
  kind: 'blob' | 'dangling-pins' | 'temporary-file';
  /** The digest, or the temporary file's path. */
  target: string;
  outcome: RemovalOutcome;
  bytes: number;
}

function unlinkIfPresent(file: string): boolean {
  try {
    fs.unlinkSync(file);
    return true;
  } catch (err) {
    if (isMissing(err)) return false;
    throw err;
  }
}

/**
 * Removes the listed pins that are unchanged, then the pin directory if that left it empty;
 * false when something stayed (a pin written or touched since the listing).
 */
function removePins(blobDir: string, hex: string, pins: readonly PinFile[]): boolean {
  let all = true;
  for (const pin of pins) {
    const now = statOrUndefined(pin.file);
    if (now && now.mtimeMs !== pin.mtimeMs) all = false;
    else if (now) unlinkIfPresent(pin.file);
  }
  try {
    fs.rmdirSync(pinDir(blobDir, hex));
  } catch (err) {
    // Not empty: a pin written since, or a write in progress. It stays, with what is in it.
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'ENOTEMPTY' && code !== 'EEXIST' && !isMissing(err)) throw err;
    if (!isMissing(err)) all = false;
  }
  return all;
}

/** Whether the blob's pins are still the ones listed: none new, none written again. */
function pinsUnchanged(blobDir: string, hex: string, listed: readonly PinFile[]): boolean {
  const before = new Map(listed.map((p) => [p.file, p.mtimeMs]));
  return readPins(blobDir, hex).every((p) => before.get(p.file) === p.mtimeMs);
}

/**
 * Removes one blob, then its pins. A put of the same content may race with this (the store is
 * content-addressed: another workflow can write the same output at any time). The blob is moved
 * aside first, in one rename, and only then checked: a put that touched it or pinned it before the
 * rename shows in the moved file's mtime or the pins, and the blob is put back; a put after the
 * rename finds no blob and writes it again. So the blob never stays removed under a workflow that
 * just referenced it; the moment between the rename and the putting back is the only one a reader
 * of that content could miss it, and only while a put of it is in progress.
 */
function removeBlob(blobDir: string, blob: ListedBlob): RemovalOutcome {
  const hex = blob.digest.slice('sha256:'.length);
  const file = path.join(blobDir, hex.slice(0, 2), hex);
  const aside = path.join(
    path.dirname(file),
    `${REMOVAL_PREFIX}${hex}-${crypto.randomBytes(4).toString('hex')}`,
  );
  try {
    fs.renameSync(file, aside);
  } catch (err) {
    if (isMissing(err)) return 'gone';
    throw err;
  }
  if (fs.statSync(aside).mtimeMs !== blob.mtimeMs || !pinsUnchanged(blobDir, hex, blob.pins)) {
    fs.renameSync(aside, file); // the same content as any put since wrote there
    return 'in-use';
  }
  fs.unlinkSync(aside);
  removePins(blobDir, hex, blob.pins);
  return 'removed';
}

/** How one kind of store removes each thing a plan decides to remove (applyRetentionPlan runs them in order). */
export interface RemovalSteps {
  blob(blob: ListedBlob): Promise<RemovalOutcome> | RemovalOutcome;
  /** Whether the pins went (false: a blob or a pin was written since the listing). */
  danglingPins(dangling: ListedDanglingPins): Promise<boolean> | boolean;
  /** The bytes removed, or undefined when it was already gone. */
  tempFile(temp: TempFile): Promise<number | undefined> | number | undefined;
}

/** Removes what `plan` decided to remove with `steps`; everything it keeps is left untouched. */
export async function applyRetentionPlan(plan: BlobStorePlan, steps: RemovalSteps): Promise<RemovalRecord[]> {
  const records: RemovalRecord[] = [];
  for (const blob of plan.blobs)
    if (blob.action === 'remove')
      records.push({ kind: 'blob', target: blob.digest, outcome: await steps.blob(blob), bytes: blob.bytes });
  for (const dangling of plan.danglingPins)
    if (dangling.action === 'remove')
      records.push({
        kind: 'dangling-pins',
        target: dangling.digest,
        outcome: (await steps.danglingPins(dangling)) ? 'removed' : 'in-use',
        bytes: 0,
      });
  for (const temp of plan.tempFiles)
    if (temp.action === 'remove') {
      const bytes = await steps.tempFile(temp);
      records.push({
        kind: 'temporary-file',
        target: temp.path,
        outcome: bytes === undefined ? 'gone' : 'removed',
        bytes: bytes ?? 0,
      });
    }
  return records;
}

/** Removes from the directory store what `plan` decided to remove. */
export function applyBlobRetention(blobDir: string, plan: BlobStorePlan): Promise<RemovalRecord[]> {
  return applyRetentionPlan(plan, {
    blob: (blob) => removeBlob(blobDir, blob),
    danglingPins: (dangling) => {
      const hex = dangling.digest.slice('sha256:'.length);
      // A put writes the pin before the blob: a blob there now means a write finished since the listing.
      const written = fs.existsSync(path.join(blobDir, hex.slice(0, 2), hex));
      return !written && removePins(blobDir, hex, dangling.pins);
    },
    tempFile: (temp) => {
      const bytes = statOrUndefined(temp.path)?.size ?? 0;
      return unlinkIfPresent(temp.path) ? bytes : undefined;
    },
  });
}

export interface BlobCollection {
  plan: BlobStorePlan;
  /** What was removed; empty on a dry run. */
  removals: RemovalRecord[];
}

/** One collection: list, ask, decide, and (unless `dryRun`) remove. */
export async function collectBlobGarbage(
  store: BlobStoreAccess,
  lookup: WorkflowStateLookup,
  options: { nowMs: number; retentionMs: number; dryRun?: boolean },
): Promise<BlobCollection> {
  const plan = await planBlobRetention(await store.list(), lookup, options);
  return { plan, removals: options.dryRun ? [] : await store.apply(plan) };
}
