/** Reading a workflow's history in tests. */
import type { WorkflowHandle } from '@temporalio/client';

type History = Awaited<ReturnType<WorkflowHandle['fetchHistory']>>;

/** The most step activities (`runRayTask`) scheduled and not yet closed at once, over a history. */
export function mostStepsInFlight(history: History): number {
  const steps = new Set<string>();
  let inFlight = 0;
  let most = 0;
  for (const event of history.events ?? []) {
    if (event.activityTaskScheduledEventAttributes?.activityType?.name === 'runRayTask') {
      steps.add(String(event.eventId));
      most = Math.max(most, ++inFlight);
    }
    const closed =
      event.activityTaskCompletedEventAttributes ??
      event.activityTaskFailedEventAttributes ??
      event.activityTaskTimedOutEventAttributes ??
      event.activityTaskCanceledEventAttributes;
    if (closed && steps.delete(String(closed.scheduledEventId))) inFlight--;
  }
  return most;
}
