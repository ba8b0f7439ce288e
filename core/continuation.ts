/**
 * Long JSON pipelines continue as new: after a number of steps (or half its
 * history budget) a run stops starting steps, lets the running ones end, and
 * continues as a new run of the same workflow id with the spec and a compact
 * record of what is done. Pure functions over plain data: safe in workflow code.
 *
 * What is carried, and why it stays small whatever the pipeline's size: each
 * step's status as one character (in spec order), the records of at most
 * `maxCarriedRecords` steps that failed or were cancelled (their errors cut
 * short), the outputs of finished steps that a step not yet finished still
 * reads (a `$step` reference or a dependency), and the usage totals. A run may
 * continue only when the spec and all that fit one Temporal payload with room
 * to spare (`maxContinuationBytes`); otherwise it runs on and tries again after
 * the next step ends.
 */
import { z } from 'zod';
import type { StepResult, StepStatus, UsageReport } from './schemas/pipeline-spec';

export const CONTINUATION_LIMITS = {
  /** Steps a run ends (finishes) before it continues as new: about 7 history events each. */
  defaultStepsPerRun: 2_000,
  minStepsPerRun: 10,
  maxStepsPerRun: 5_000,
  /** Continue once the run's history holds this share of its byte budget. */
  historyBudgetShare: 0.5,
  /** The continued run's whole input (spec and carried state), under Temporal's 2 MB payload limit. */
  maxContinuationBytes: 1_900_000,
  maxCarriedRecords: 100,
  maxCarriedErrorChars: 500,
} as const;

const STATUS_CODES: Record<StepStatus, string> = {
  pending: 'p',
  queued: 'q',
  running: 'r',
  succeeded: 's',
  failed: 'f',
  skipped: 'k',
  cancelled: 'c',
};
const STATUS_OF_CODE = Object.fromEntries(Object.entries(STATUS_CODES).map(([s, c]) => [c, s])) as Record<
  string,
  StepStatus
>;

const usageTotalsSchema = z.object({
  steps: z.number(),
  attempts: z.number(),
  cpuSeconds: z.number(),
  runningMs: z.number(),
  temporalQueueMs: z.number(),
  rayQueueMs: z.number(),
});
export type UsageTotals = z.infer<typeof usageTotalsSchema>;

export const carriedStateSchema = z
  .object({
    /** Runs before this one (1 in the first continued run). */
    runs: z.number().int().min(1),
    /** One character per step of `order`: p pending, s succeeded, f failed, k skipped, c cancelled. */
    statuses: z.string().regex(/^[pqrsfkc]*$/),
    /** Step ids in the order they became known (spec order, then steps added by updates). */
    order: z.array(z.string()),
    records: z.record(
      z.string(),
      z.object({
        status: z.enum(['failed', 'cancelled']),
        attempts: z.number().int(),
        error: z.object({ type: z.string(), message: z.string() }).optional(),
      }),
    ),
    outputs: z.record(z.string(), z.unknown()),
    usage: usageTotalsSchema,
    /** The priority the pipeline had when it continued (a setPriority update may have changed it). */
    priority: z.number().int().min(1).max(5),
  })
  .strict();
export type CarriedState = z.infer<typeof carriedStateSchema>;

/** A continued run's input: the spec (steps added by updates included) and what the runs before did. */
export const continuationInputSchema = z
  .object({ spec: z.unknown(), continuation: carriedStateSchema })
  .strict();
export type ContinuationInput = z.infer<typeof continuationInputSchema>;

/**
 * Steps as a continued run carries them: the fields zod fills with defaults (empty args, kwargs and
 * dependsOn) left out, which the next run's validation fills in again. A spec of 20,000 small steps
 * takes about 600 KB less this way.
 */
export function compactSteps<S extends { args?: unknown[]; kwargs?: object; dependsOn?: string[] }>(
  steps: readonly S[],
): Partial<S>[] {
  return steps.map((step) => {
    const { args, kwargs, dependsOn, ...rest } = step;
    return {
      ...rest,
      ...(args && args.length > 0 && { args }),
      ...(kwargs && Object.keys(kwargs).length > 0 && { kwargs }),
      ...(dependsOn && dependsOn.length > 0 && { dependsOn }),
    } as Partial<S>;
  });
}

/** Whether an input is a continuation (it names `continuation`); otherwise it is a spec. */
export function isContinuationInput(input: unknown): boolean {
  return typeof input === 'object' && input !== null && 'continuation' in input;
}

/** Whether a run should stop starting steps and continue as new. */
export function shouldContinue(run: {
  stepsEndedThisRun: number;
  stepsPerRun: number;
  historyBytes: number;
  historyBudgetBytes: number;
  allFinal: boolean;
}): boolean {
  if (run.allFinal) return false;
  return (
    run.stepsEndedThisRun >= run.stepsPerRun ||
    run.historyBytes >= run.historyBudgetBytes * CONTINUATION_LIMITS.historyBudgetShare
  );
}

/**
 * What a run carries to the next: `needed` are the steps whose outputs a step not yet finished reads.
 * Steps still queued or running are never carried (a run continues only once none are).
 */
export function carryState(input: {
  order: readonly string[];
  results: Readonly<Record<string, StepResult>>;
  needed: ReadonlySet<string>;
  usage: UsageReport['totals'];
  priority: number;
  runsBefore: number;
}): CarriedState {
  const { order, results, needed } = input;
  const records: CarriedState['records'] = {};
  const outputs: Record<string, unknown> = {};
  let statuses = '';
  for (const id of order) {
    const result = results[id]!;
    statuses += STATUS_CODES[result.status];
    if (
      (result.status === 'failed' || result.status === 'cancelled') &&
      Object.keys(records).length < CONTINUATION_LIMITS.maxCarriedRecords
    )
      records[id] = {
        status: result.status,
        attempts: result.attempts,
        ...(result.error && {
          error: {
            type: result.error.type,
            message: result.error.message.slice(0, CONTINUATION_LIMITS.maxCarriedErrorChars),
          },
        }),
      };
    if (result.status === 'succeeded' && needed.has(id)) outputs[id] = result.output;
  }
  const { steps, attempts, cpuSeconds, runningMs, temporalQueueMs, rayQueueMs } = input.usage;
  return {
    runs: input.runsBefore + 1,
    statuses,
    order: [...order],
    records,
    outputs,
    usage: { steps, attempts, cpuSeconds, runningMs, temporalQueueMs, rayQueueMs },
    priority: input.priority,
  };
}

/** The records a continued run starts from: every carried step's status, and its output or error. */
export function restoredRecords(carried: CarriedState): Array<{ id: string; result: StepResult }> {
  return carried.order.map((id, i) => {
    const status = STATUS_OF_CODE[carried.statuses[i] ?? 'p'] ?? 'pending';
    const record = carried.records[id];
    return {
      id,
      result: {
        status,
        attempts: record?.attempts ?? (status === 'succeeded' ? 1 : 0),
        ...(record?.error && { error: record.error }),
        ...(id in carried.outputs && { output: carried.outputs[id] }),
      },
    };
  });
}

/** Usage totals of the runs before added to this run's. */
export function withCarriedUsage(usage: UsageReport, carried: UsageTotals | undefined): UsageReport {
  if (!carried) return usage;
  const t = usage.totals;
  return {
    ...usage,
    totals: {
      ...t,
      steps: t.steps + carried.steps,
      attempts: t.attempts + carried.attempts,
      cpuSeconds: t.cpuSeconds + carried.cpuSeconds,
      runningMs: t.runningMs + carried.runningMs,
      temporalQueueMs: t.temporalQueueMs + carried.temporalQueueMs,
      rayQueueMs: t.rayQueueMs + carried.rayQueueMs,
    },
  };
}
