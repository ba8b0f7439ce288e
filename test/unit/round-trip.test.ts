/**
 * The round-trip profile's cut (bench/lib/round-trip.ts): a one-step pipeline's history, Ray's
 * record of its task and the client's clock make consecutive segments that add up to the whole.
 */
import { msNumberToTs } from '@temporalio/common/lib/time';
import { roundTripSegments, SEGMENTS } from '../../core/round-trip-profile';

const event = (id: number, atMs: number, attributes: Record<string, unknown>) => ({
  // Ids are Longs on the wire; the cut only compares them as text.
  eventId: id as never,
  eventTime: msNumberToTs(atMs),
  ...attributes,
});

const events = [
  event(1, 1_005, { workflowExecutionStartedEventAttributes: {} }),
  event(3, 1_010, { workflowTaskStartedEventAttributes: {} }),
  event(5, 1_030, { activityTaskScheduledEventAttributes: { activityId: 'step:other' } }),
  event(6, 1_040, { activityTaskScheduledEventAttributes: { activityId: 'step:echo' } }),
  event(7, 1_050, { activityTaskStartedEventAttributes: { scheduledEventId: 6 as never } }),
  event(8, 1_100, { activityTaskCompletedEventAttributes: { scheduledEventId: 6 as never } }),
  event(12, 1_130, { workflowExecutionCompletedEventAttributes: {} }),
];

test('segments follow one another and add up to the end-to-end latency', () => {
  const segments = roundTripSegments({
    clientStartMs: 1_000,
    clientEndMs: 1_140,
    events,
    activityId: 'step:echo',
    ray: { createdAtMs: 1_060, startedAtMs: 1_070, endedAtMs: 1_090 },
  });
  expect(segments).toEqual({
    clientToFirstWorkflowTask: 10,
    workflowToStepScheduled: 30,
    scheduledToActivityStarted: 10,
    activityToRaySubmitted: 10,
    raySubmittedToRunning: 10,
    rayRunning: 20,
    rayEndedToActivityCompleted: 10,
    activityToWorkflowCompleted: 30,
    workflowCompletedToClient: 10,
  });
  expect(SEGMENTS.reduce((sum, name) => sum + segments![name], 0)).toBe(140);
});

test('a history without the step’s completion cannot be cut', () => {
  expect(
    roundTripSegments({
      clientStartMs: 1_000,
      clientEndMs: 1_140,
      events: events.filter((e) => !('activityTaskCompletedEventAttributes' in e)),
      activityId: 'step:echo',
      ray: { createdAtMs: 1_060, startedAtMs: 1_070, endedAtMs: 1_090 },
    }),
  ).toBeUndefined();
});
