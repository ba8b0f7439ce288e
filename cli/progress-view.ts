/**
 * A live progress bar per step (cli-progress), fed by the pipeline's
 * `progress` query. Steps of a code-defined pipeline appear as the code
 * reaches them. A running step fills against its agent's usual duration when
 * the agent's record has one; otherwise it creeps toward 90 % so that it moves
 * without pretending to know.
 */
import { MultiBar, Presets, type SingleBar } from 'cli-progress';
import { stepActivityId } from '../core/messages/pipeline';
import { mapItemsSchema } from '../core/schemas/map-step';
import type { PipelineResult, StepResult, StepStatus } from '../core/schemas/pipeline-spec';
import { duration, stepTimes } from './format';

const FINAL: ReadonlySet<StepStatus> = new Set(['succeeded', 'failed', 'skipped', 'cancelled']);
/** How fast an unknown-length step creeps: half way to 90 % after this long. */
const CREEP_HALF_LIFE_MS = 10_000;

/** A running activity as Temporal's describe lists it: its id and its last heartbeat's details. */
export interface PendingActivity {
  activityId: string;
  details: unknown;
}

/**
 * The pipeline's progress with each running map step's items filled in from its activity's last
 * heartbeat (the dispatcher's count), which the workflow itself does not hear of until the map
 * ends: item progress costs the pipeline's history nothing.
 */
export function withMapItems(progress: PipelineResult, pending: readonly PendingActivity[]): PipelineResult {
  const byActivity = new Map(pending.map((a) => [a.activityId, a.details]));
  const steps = { ...progress.steps };
  for (const id of progress.stepOrder) {
    const step = steps[id];
    if (!step || FINAL.has(step.status)) continue;
    const details = byActivity.get(stepActivityId(id)) as { items?: unknown } | undefined;
    const items = mapItemsSchema.safeParse(details?.items);
    if (items.success) steps[id] = { ...step, items: items.data };
  }
  return { ...progress, steps };
}

export function stepPercent(step: StepResult, now: number): number {
  if (FINAL.has(step.status)) return 100;
  if (step.status === 'pending') return 0;
  if (step.status === 'queued') return 2;
  if (step.items && step.items.total > 0)
    return 5 + (90 * (step.items.succeeded + step.items.failed)) / step.items.total;
  const running = stepTimes(step, now).runningMs ?? 0;
  if (step.expectedRunningMs) return Math.min(95, 5 + (90 * running) / step.expectedRunningMs);
  return 5 + 85 * (1 - Math.pow(0.5, running / CREEP_HALF_LIFE_MS));
}

function detail(step: StepResult, now: number): string {
  const times = stepTimes(step, now);
  const parts: string[] = [];
  if (step.agent) parts.push(step.fallbackFrom ? `${step.agent} (fallback)` : step.agent);
  if (step.items)
    parts.push(
      `${step.items.succeeded}/${step.items.total} items${step.items.failed ? `, ${step.items.failed} failed` : ''}`,
    );
  if (step.attempts > 1) parts.push(`attempt ${step.attempts}`);
  if (times.queuedMs !== undefined) parts.push(`queued ${duration(times.queuedMs)}`);
  if (times.runningMs !== undefined) parts.push(`ran ${duration(times.runningMs)}`);
  if (step.node) parts.push(`node ${step.node.slice(0, 8)}`);
  if (step.error && step.status !== 'succeeded')
    parts.push(`${step.error.type}: ${step.error.message.slice(0, 60)}`);
  return parts.join(' · ');
}

export class PipelineProgressView {
  private readonly bars = new Map<string, SingleBar>();
  private readonly multibar: MultiBar;
  private readonly width: number;

  constructor(stream: NodeJS.WriteStream = process.stderr, stepIdWidth = 18) {
    this.width = stepIdWidth;
    this.multibar = new MultiBar(
      {
        stream,
        format: ' {step} {bar} {percentage}% {status} {detail}',
        barsize: 24,
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        // Piped output (CI, tests) gets a line per step every few seconds instead of redraws.
        noTTYOutput: true,
        notTTYSchedule: 3_000,
        autopadding: true,
      },
      Presets.shades_classic,
    );
  }

  update(progress: PipelineResult, now = Date.now()): void {
    for (const id of progress.stepOrder) {
      const step = progress.steps[id]!;
      const payload = {
        step: id.length > this.width ? `${id.slice(0, this.width - 1)}…` : id.padEnd(this.width),
        status: step.status.padEnd(9),
        detail: detail(step, now),
      };
      const value = Math.round(stepPercent(step, now));
      const bar = this.bars.get(id);
      if (bar) bar.update(value, payload);
      else this.bars.set(id, this.multibar.create(100, value, payload));
    }
  }

  stop(): void {
    this.multibar.stop();
  }
}
