/**
 * The blob store's retention, run by the worker on a timer: the same
 * collection as `pantheon blobs gc` (core/blob-retention.ts decides,
 * stack/blob-store.ts acts), next to the dispatcher's retention
 * (dispatcher-retention.ts), which it resembles: Temporal says which
 * workflows are closed, and what they alone held is released.
 *
 * Off unless the worker is given the store (`PANTHEON_BLOB_URL`, an
 * S3-compatible bucket, or `PANTHEON_BLOB_DIR`, the directory the Ray nodes
 * write, which the worker must see too) and an interval
 * (`PANTHEON_BLOB_SWEEP_MS`): a directory store lives on the Ray nodes'
 * shared mount, which a worker elsewhere may not have. Several
 * workers sweeping is harmless: a removal that finds its blob already gone
 * records it as gone. A sweep that fails (Temporal unreachable) removes
 * nothing and runs again at the next tick. A directory store is listed with
 * synchronous file calls: milliseconds for thousands of blobs, but a store of
 * millions would hold the worker's event loop for seconds per sweep, so such a
 * store is better collected by `pantheon blobs gc` from a cron job.
 */
import type { Logger } from 'pino';
import { runPeriodically } from './periodic';
import { summarizeBlobRetention } from '../../core/blob-retention';
import {
  collectBlobGarbage,
  openBlobStore,
  type BlobStoreAccess,
  type BlobStoreSettings,
  type WorkflowStateLookup,
} from '../../stack/blob-store';

export interface BlobRetentionSweep {
  store: BlobStoreSettings;
  retentionMs: number;
  intervalMs: number;
}

/** One sweep at `nowMs`; returns the summary of what it decided and what it removed. */
export async function sweepBlobRetention(
  store: BlobStoreAccess,
  lookup: WorkflowStateLookup,
  options: { retentionMs: number; nowMs: number },
  logger: Logger,
): Promise<{ removed: number; removedBytes: number; kept: number }> {
  const { plan, removals } = await collectBlobGarbage(store, lookup, options);
  const summary = summarizeBlobRetention(plan);
  const removed = removals.filter((r) => r.kind === 'blob' && r.outcome === 'removed');
  const removedBytes = removed.reduce((n, r) => n + r.bytes, 0);
  if (removals.length > 0)
    logger.info(
      {
        blobStore: store.where,
        removed: removed.length,
        removedBytes,
        keptOpen: summary.keptOpen,
        removals: removals.length,
      },
      'removed blob-store outputs past their retention',
    );
  return { removed: removed.length, removedBytes, kept: summary.keptOpen + summary.keptWithinRetention };
}

/** Sweeps every `intervalMs` until the returned stop function is called. */
export function startBlobRetention(
  sweep: BlobRetentionSweep,
  lookup: WorkflowStateLookup,
  logger: Logger,
): () => void {
  let opened: Promise<BlobStoreAccess | undefined> | undefined;
  const stop = runPeriodically(
    'blob-store retention sweep',
    sweep.intervalMs,
    async () => {
      const store = await (opened ??= openBlobStore(sweep.store));
      if (store)
        await sweepBlobRetention(
          store,
          lookup,
          { retentionMs: sweep.retentionMs, nowMs: Date.now() },
          logger,
        );
    },
    logger,
  );
  return () => {
    stop();
    void opened?.then((store) => store?.close?.());
  };
}
