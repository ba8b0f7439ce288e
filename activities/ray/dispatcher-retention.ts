/**
 * Retention of the dispatcher's finished entries, tied to the workflow: an
 * entry stays while its workflow run is open (a retry hours later still
 * attaches to the finished step instead of running it again) and is released
 * once Temporal says the run is closed. No age alone removes an entry.
 *
 * Every worker sweeps on a timer (PANTHEON_DISPATCHER_SWEEP_MS): it asks the
 * dispatcher which runs hold entries finished a while ago, asks Temporal
 * about each, and releases the closed ones. Sweeps from several workers are
 * harmless (a release is idempotent), and a sweep that fails is tried again at
 * the next tick. While no worker sweeps, entries are kept: the dispatcher's
 * memory stays bounded by its output budget (ray-tasks/pantheon_runtime/step_store.py).
 */
import type { Logger } from 'pino';
import { runPeriodically } from './periodic';
import type { DispatcherClient } from './dispatcher-client';
import type { WorkflowClosedCheck } from './workflow-liveness';

export interface RetentionOptions {
  /** Entries younger than this are not asked about: their workflow is almost surely open. */
  minAgeS?: number;
}

/** One sweep: releases the entries of every closed run; returns what it saw and released. */
export async function sweepDispatcherRetention(
  dispatcher: Pick<DispatcherClient, 'finishedRuns' | 'release'>,
  workflowClosed: WorkflowClosedCheck,
  options: RetentionOptions,
  logger: Logger,
): Promise<{ runs: number; closed: number; released: number }> {
  const runs = await dispatcher.finishedRuns(options.minAgeS ?? 60);
  let closed = 0;
  let released = 0;
  for (const run of runs) {
    let isClosed: boolean;
    try {
      isClosed = await workflowClosed(run.workflowId, run.runId);
    } catch (err) {
      // Temporal unreachable: keep the entries, ask again next time.
      logger.warn({ err, workflowId: run.workflowId }, 'could not ask whether a workflow is closed');
      continue;
    }
    if (!isClosed) continue;
    closed++;
    released += await dispatcher.release(run.workflowId, run.runId);
  }
  if (released > 0)
    logger.info({ runs: runs.length, closed, released }, 'released finished Ray steps of closed workflows');
  return { runs: runs.length, closed, released };
}

/** Sweeps every `intervalMs` until the returned stop function is called. */
export function startDispatcherRetention(
  dispatcher: Pick<DispatcherClient, 'finishedRuns' | 'release'>,
  workflowClosed: WorkflowClosedCheck,
  intervalMs: number,
  logger: Logger,
): () => void {
  return runPeriodically(
    'dispatcher retention sweep',
    intervalMs,
    () => sweepDispatcherRetention(dispatcher, workflowClosed, {}, logger),
    logger,
  );
}
