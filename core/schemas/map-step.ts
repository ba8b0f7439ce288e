/**
 * Map steps: one task over a list, each item its own Ray task under the step's
 * one activity (ray-tasks/pantheon_runtime/map_runner.py runs them). What a
 * spec may say about a map (`mapSpecSchema`, beside the step's own schema in
 * pipeline-spec.ts), what the activity passes on, and what it reports.
 */
import { z } from 'zod';
import type { MapSpec } from './pipeline-spec';

export const MAP_LIMITS = {
  /** Items of one map: the dispatcher keeps every finished item's output until the map ends. */
  maxItems: 1_000_000,
  /** Items in flight at once. */
  maxConcurrency: 4_096,
  /** Tries of one item (retries are the dispatcher's, never the activity's). */
  maxItemAttempts: 10,
} as const;

/** What the map's activity is given: the spec with `over` resolved, and the step's non-retryable errors. */
export interface MapCall extends Omit<MapSpec, 'over'> {
  over: unknown;
  nonRetryableErrors?: string[];
}

/** How far a map has come: in its heartbeats, the dispatcher's status and the step's record. */
export const mapItemsSchema = z.object({
  total: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  running: z.number().int(),
  itemAttempts: z.number().int(),
});
export type MapItems = z.infer<typeof mapItemsSchema>;

/** An item that failed for good, as the map's failure lists it. */
export const failedItemSchema = z.object({
  index: z.number().int(),
  type: z.string(),
  message: z.string(),
  attempts: z.number().int(),
});
export type FailedItem = z.infer<typeof failedItemSchema>;

/** The map call of a step whose list is resolved to `over`: the step's exception types that items must not retry go along. */
export function mapCallOf(step: { map?: MapSpec; nonRetryableErrors?: string[] }, over: unknown): MapCall {
  const { over: _declared, ...how } = step.map ?? { over: [] };
  return {
    ...how,
    over,
    ...(step.nonRetryableErrors?.length && { nonRetryableErrors: step.nonRetryableErrors }),
  };
}
