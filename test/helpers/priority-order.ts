/**
 * Priority order as the tests read it: a low-priority backlog, then urgent steps queued behind it.
 * The low steps that had not started when the last urgent step was queued are the "remaining"
 * backlog; none of them may start before the last urgent step does.
 */
import type { PipelineResult, StepResult } from '../../core/schemas/pipeline-spec';

/** `count` sleep steps `<prefix>0…`, each `sleep(seconds)`. */
export function sleepSteps(prefix: string, count: number, seconds: number) {
  return Array.from({ length: count }, (_, i) => ({
    id: `${prefix}${i}`,
    task: 'pantheon_tasks.testkit:sleep',
    args: [seconds, i],
  }));
}

const started = (s: StepResult) => s.startedAtMs ?? Number.POSITIVE_INFINITY;

export function priorityOrder(low: PipelineResult, urgent: PipelineResult) {
  const urgentSteps = Object.values(urgent.steps);
  const urgentQueuedAt = Math.max(...urgentSteps.map((s) => s.scheduledAtMs!));
  const lastUrgentStart = Math.max(...urgentSteps.map(started));
  const lowByStart = Object.values(low.steps).sort((a, b) => started(a) - started(b));
  const remaining = lowByStart.filter((s) => started(s) > urgentQueuedAt);
  return {
    urgentSteps,
    lowByStart,
    urgentQueuedAt,
    lastUrgentStart,
    remaining,
    /** Remaining low steps that started before the last urgent one: must be none. */
    overtaken: remaining.filter((s) => started(s) < lastUrgentStart),
  };
}
