/**
 * Which blobs of the blob store (ray-tasks/pantheon_runtime/blob_store.py) may
 * be removed, and why (issue #13).
 *
 * A step output kept in the store is referenced from its workflow's history:
 * `pantheon output`, the Web UI's codec server and later steps read it for as
 * long as the workflow is open, and people read it for a while after. So the
 * store records, per blob, the workflows that wrote it (its pins), and a blob
 * is removed only when none of them is open and a retention period has passed
 * since its last use: the later of its last write and the latest close of the
 * workflows that pin it. A workflow Temporal no longer knows (its own
 * retention removed it) counts as closed long ago; a blob no workflow pins
 * counts from its last write alone.
 *
 * Pure: plain data in (what the store holds, what Temporal says of each
 * workflow, the clock), typed decisions out. The adapter that lists the store,
 * asks Temporal and removes files is stack/blob-store.ts.
 */
import { z } from 'zod';

/** What Temporal says of a workflow id (its latest run). */
export type WorkflowState =
  | { state: 'open' }
  | { state: 'closed'; closeTimeMs: number }
  /** Temporal no longer has it (removed after its namespace's retention): closed, at time 0. */
  | { state: 'unknown' };

/** A blob in the store: its digest (`sha256:<hex>`), size, last write, and the workflows that pin it. */
export interface StoredBlob {
  digest: string;
  bytes: number;
  mtimeMs: number;
  pinnedBy: readonly string[];
}

/**
 * Pins whose blob is not in the store: a put writes the pin before the blob (so a
 * collector never sees a new blob without its pin), and a removal that stopped
 * between the blob and its pins leaves them behind. `mtimeMs` is the newest pin's.
 */
export interface DanglingPins {
  digest: string;
  mtimeMs: number;
  pinnedBy: readonly string[];
}

/** A temporary file of a write (`.incoming-*`) or a removal (`.removing-*`) that was never finished. */
export interface TempFile {
  path: string;
  mtimeMs: number;
}

/**
 * The input; an adapter may pass richer records (what it needs to act safely on a decision), which
 * come back in the plan as they were given.
 */
export interface BlobRetentionInput<
  B extends StoredBlob = StoredBlob,
  P extends DanglingPins = DanglingPins,
  T extends TempFile = TempFile,
> {
  blobs: readonly B[];
  danglingPins?: readonly P[];
  tempFiles?: readonly T[];
  /**
   * The state of every workflow that pins something. A workflow missing here counts as open:
   * the decision never removes what it was not told it may.
   */
  workflows: ReadonlyMap<string, WorkflowState>;
  nowMs: number;
  retentionMs: number;
}

/** Why something is kept: a workflow that may still read it, or the retention period not over yet. */
export type Hold =
  | { action: 'keep'; reason: 'pinned-by-open-workflow'; openWorkflows: string[] }
  | { action: 'keep'; reason: 'within-retention'; lastUseMs: number; removableAtMs: number }
  | { action: 'remove'; reason: 'retention-elapsed'; lastUseMs: number; removableAtMs: number };

export type BlobDecision<B extends StoredBlob = StoredBlob> = B & Hold;
export type DanglingPinsDecision<P extends DanglingPins = DanglingPins> = P & Hold;
export type TempFileDecision<T extends TempFile = TempFile> = T &
  (
    | { action: 'keep'; reason: 'within-retention'; removableAtMs: number }
    | { action: 'remove'; reason: 'stale-temporary-file'; removableAtMs: number }
  );

export interface BlobRetentionPlan<
  B extends StoredBlob = StoredBlob,
  P extends DanglingPins = DanglingPins,
  T extends TempFile = TempFile,
> {
  /** One decision per blob, in the order given. */
  blobs: BlobDecision<B>[];
  danglingPins: DanglingPinsDecision<P>[];
  tempFiles: TempFileDecision<T>[];
  nowMs: number;
  retentionMs: number;
}

/**
 * A temporary file younger than this is never removed, whatever the retention: a write of a
 * 256 MiB blob in progress (or a removal's rename) must not lose its file under it, even to a
 * collection run with a retention of 0.
 */
export const MIN_TEMP_FILE_AGE_MS = 60 * 60 * 1000;

export const DEFAULT_BLOB_RETENTION_MS = 7 * 24 * 60 * 60 * 1000;

function hold(
  pinnedBy: readonly string[],
  mtimeMs: number,
  workflows: ReadonlyMap<string, WorkflowState>,
  nowMs: number,
  retentionMs: number,
): Hold {
  const openWorkflows: string[] = [];
  let lastUseMs = mtimeMs;
  for (const id of new Set(pinnedBy)) {
    const known = workflows.get(id) ?? { state: 'open' };
    if (known.state === 'open') openWorkflows.push(id);
    else if (known.state === 'closed') lastUseMs = Math.max(lastUseMs, known.closeTimeMs);
    // 'unknown': closed at time 0, which never raises the last use above the write.
  }
  if (openWorkflows.length > 0) return { action: 'keep', reason: 'pinned-by-open-workflow', openWorkflows };
  const removableAtMs = lastUseMs + retentionMs;
  return removableAtMs <= nowMs
    ? { action: 'remove', reason: 'retention-elapsed', lastUseMs, removableAtMs }
    : { action: 'keep', reason: 'within-retention', lastUseMs, removableAtMs };
}

/** The decision for everything the store holds. */
export function decideBlobRetention<B extends StoredBlob, P extends DanglingPins, T extends TempFile>(
  input: BlobRetentionInput<B, P, T>,
): BlobRetentionPlan<B, P, T> {
  const { workflows, nowMs, retentionMs } = input;
  const tempAgeMs = Math.max(retentionMs, MIN_TEMP_FILE_AGE_MS);
  return {
    blobs: input.blobs.map((blob) => ({
      ...blob,
      ...hold(blob.pinnedBy, blob.mtimeMs, workflows, nowMs, retentionMs),
    })),
    danglingPins: (input.danglingPins ?? []).map((pins) => ({
      ...pins,
      ...hold(pins.pinnedBy, pins.mtimeMs, workflows, nowMs, retentionMs),
    })),
    tempFiles: (input.tempFiles ?? []).map((file): TempFileDecision<T> => {
      const removableAtMs = file.mtimeMs + tempAgeMs;
      return removableAtMs <= nowMs
        ? { ...file, action: 'remove', reason: 'stale-temporary-file', removableAtMs }
        : { ...file, action: 'keep', reason: 'within-retention', removableAtMs };
    }),
    nowMs,
    retentionMs,
  };
}

/** Counts and bytes of a plan, for a report. */
export function summarizeBlobRetention(plan: BlobRetentionPlan<StoredBlob, DanglingPins, TempFile>): {
  removed: number;
  removedBytes: number;
  keptOpen: number;
  keptWithinRetention: number;
  keptBytes: number;
  danglingPinsRemoved: number;
  tempFilesRemoved: number;
} {
  const removed = plan.blobs.filter((b) => b.action === 'remove');
  const kept = plan.blobs.filter((b) => b.action === 'keep');
  const sum = (blobs: StoredBlob[]) => blobs.reduce((n, b) => n + b.bytes, 0);
  return {
    removed: removed.length,
    removedBytes: sum(removed),
    keptOpen: kept.filter((b) => b.reason === 'pinned-by-open-workflow').length,
    keptWithinRetention: kept.filter((b) => b.reason === 'within-retention').length,
    keptBytes: sum(kept),
    danglingPinsRemoved: plan.danglingPins.filter((p) => p.action === 'remove').length,
    tempFilesRemoved: plan.tempFiles.filter((f) => f.action === 'remove').length,
  };
}

const UNIT_MS = { d: 86_400_000, h: 3_600_000, m: 60_000, s: 1_000 } as const;

/**
 * A retention period as people write it: `7d`, `36h`, `90m`, `30s`, or a sum such as `1d12h`;
 * parsed to milliseconds. A bare number is refused: minutes or days would be a guess.
 */
export const retentionDurationSchema = z
  .string()
  .trim()
  .regex(/^(?:\d+[dhms])+$/, 'a duration such as 7d, 36h, 90m or 1d12h')
  .transform((text) => {
    let ms = 0;
    for (const [, count, unit] of text.matchAll(/(\d+)([dhms])/g))
      ms += Number(count) * UNIT_MS[unit as keyof typeof UNIT_MS];
    return ms;
  })
  .refine((ms) => Number.isSafeInteger(ms), 'a duration of a sensible length');
