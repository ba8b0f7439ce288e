/**
 * Where a one-step pipeline's time goes (issue #14's round-trip profile): the
 * workflow's history (the server's event times), Ray's record of the step's
 * task (its submission, start and end) and the client's own clock, all on one
 * host, cut into consecutive segments that add up to the end-to-end latency.
 * Pure: the bench case (bench/run.ts) reads the sources and calls `roundTripSegments`.
 */
import { optionalTsToMs } from '@temporalio/common/lib/time';
import type { temporal } from '@temporalio/proto';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;

export const SEGMENTS = [
  /** Client call → the workflow's first task started (start request, first workflow task dispatch). */
  'clientToFirstWorkflowTask',
  /** First workflow task started → the step's activity scheduled (the workflow's own work, validation activities included). */
  'workflowToStepScheduled',
  /** Activity scheduled → started on a worker (matching, the admission unit, the poll). */
  'scheduledToActivityStarted',
  /** Activity started → its Ray task submitted (worker → bridge → dispatcher → Ray, admission's exchange). */
  'activityToRaySubmitted',
  /** Ray task submitted → running (Ray's lease and worker process). */
  'raySubmittedToRunning',
  /** The task itself. */
  'rayRunning',
  /** Ray task ended → activity completed (the dispatcher's watch, the bridge's answer, the completion to Temporal). */
  'rayEndedToActivityCompleted',
  /** Activity completed → workflow completed (the workflow task that ends the pipeline). */
  'activityToWorkflowCompleted',
  /** Workflow completed → the client has the result. */
  'workflowCompletedToClient',
] as const;
export type Segment = (typeof SEGMENTS)[number];

export interface RoundTripSources {
  clientStartMs: number;
  clientEndMs: number;
  events: readonly HistoryEvent[];
  /** The step's activity id (`step:<id>`). */
  activityId: string;
  ray: { createdAtMs: number; startedAtMs: number; endedAtMs: number };
}

const at = (event: HistoryEvent | undefined): number | undefined => optionalTsToMs(event?.eventTime);

/** The segments of one run, in ms; undefined when an event the cut needs is missing. */
export function roundTripSegments(s: RoundTripSources): Record<Segment, number> | undefined {
  const firstTaskStarted = s.events.find((e) => e.workflowTaskStartedEventAttributes);
  const scheduled = s.events.find((e) => e.activityTaskScheduledEventAttributes?.activityId === s.activityId);
  const scheduledId = scheduled?.eventId?.toString();
  const started = s.events.find(
    (e) => e.activityTaskStartedEventAttributes?.scheduledEventId?.toString() === scheduledId,
  );
  const completed = s.events.find(
    (e) => e.activityTaskCompletedEventAttributes?.scheduledEventId?.toString() === scheduledId,
  );
  const closed = s.events.find((e) => e.workflowExecutionCompletedEventAttributes);
  const times = [
    s.clientStartMs,
    at(firstTaskStarted),
    at(scheduled),
    at(started),
    s.ray.createdAtMs,
    s.ray.startedAtMs,
    s.ray.endedAtMs,
    at(completed),
    at(closed),
    s.clientEndMs,
  ];
  if (times.some((t) => t === undefined)) return undefined;
  const t = times as number[];
  return Object.fromEntries(SEGMENTS.map((name, i) => [name, t[i + 1]! - t[i]!])) as Record<Segment, number>;
}
