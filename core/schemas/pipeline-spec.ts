import { z } from 'zod';
import { MAP_LIMITS, type MapItems } from './map-step';
import { CONTINUATION_LIMITS } from '../continuation';
import { memoryIdentifierSchema } from './memory';
import { stepResourcesSchema, type Resources } from './resources';
import { TASK_REF_FORM, TASK_REF_PATTERN } from './task-ref';

/**
 * What one pipeline may hold. Temporal's limits are design inputs (DESIGN.md
 * principle 6; docs/limits.md says how each number follows from them): a
 * spec within these runs without reaching any of them.
 */
export const SPEC_LIMITS = {
  /** The whole input as JSON: Temporal refuses a payload over 2 MB, and history needs room for the rest. */
  maxSpecBytes: 1_500_000,
  /** One step's args and kwargs as JSON: larger data goes by reference. */
  maxStepInputBytes: 256 * 1024,
  /** Retries: beyond these a step is broken, not unlucky. */
  maxAttempts: 100,
  maxBackoffCoefficient: 100,
  maxRetryIntervalMs: 24 * 3600 * 1000,
  /** A step's start-to-close timeout: a week. */
  maxTimeoutSeconds: 7 * 24 * 3600,
  /**
   * Steps in flight at once (scheduled activities): the rest wait inside the workflow, in spec
   * order. Temporal allows 2,000 pending activities per workflow; this leaves room for the
   * pipeline's own control activities.
   */
  maxInFlightSteps: 1_000,
  /**
   * Steps in one pipeline. Each costs about 3 to 7 history events (scheduled, started, completed, a
   * start signal, its share of workflow tasks), so one run holds at most a few thousand: a longer
   * pipeline continues as new every `continueAsNewAfterSteps` steps (core/continuation.ts), and the
   * spec's own size (maxSpecBytes) is what bounds it in practice. docs/limits.md has the arithmetic.
   */
  maxSteps: 100_000,
} as const;

/** Steps one history holds with room to spare (about 7 events each, of Temporal's 51,200). */
export const SINGLE_RUN_MAX_STEPS = 6_000;

export const AGENT_NAME_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;

/** A Python parameter name (kwargs are passed as keyword arguments), and not a dunder. */
export const KWARG_NAME_PATTERN = /^(?!__)[A-Za-z_][A-Za-z0-9_]{0,99}$/;
/** A Python exception type name, optionally dotted (`ValueError`, `mypkg.errors.Fatal`). */
const ERROR_TYPE_PATTERN = /^[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*$/;

/** A step's output used as another step's input: `{"$step": "a"}`, optionally with a dotted `path` into it. */
export const stepRefSchema = z
  .object({
    $step: z.string().min(1),
    path: z
      .string()
      .regex(/^[^.]+(\.[^.]+)*$/)
      .optional(),
  })
  .strict();
export type StepRef = z.infer<typeof stepRefSchema>;

/** A map as a step declares it: `over` is a list, or a `$step` reference to one. */
export const mapSpecSchema = z
  .object({
    over: z.union([z.array(z.unknown()).max(MAP_LIMITS.maxItems), stepRefSchema], {
      error: 'a list, or {"$step": id} of a step whose output is one',
    }),
    /** Items in flight at once; default: as many as the cluster's CPUs hold at the step's request. */
    concurrency: z.number().int().min(1).max(MAP_LIMITS.maxConcurrency).optional(),
    /** Tries per item, the first included (default 3). */
    maxItemAttempts: z.number().int().min(1).max(MAP_LIMITS.maxItemAttempts).optional(),
    /** Items that may fail for good before no new item starts (default 0: the first failure stops it). */
    maxFailedItems: z.number().int().min(0).max(MAP_LIMITS.maxItems).optional(),
  })
  .strict();
export type MapSpec = z.infer<typeof mapSpecSchema>;

export const retrySchema = z
  .object({
    maximumAttempts: z.number().int().min(1).max(SPEC_LIMITS.maxAttempts).optional(),
    initialIntervalMs: z.number().int().min(1).max(SPEC_LIMITS.maxRetryIntervalMs).optional(),
    backoffCoefficient: z.number().min(1).max(SPEC_LIMITS.maxBackoffCoefficient).optional(),
    maximumIntervalMs: z.number().int().min(1).max(SPEC_LIMITS.maxRetryIntervalMs).optional(),
    nonRetryableErrorTypes: z
      .array(z.string().regex(ERROR_TYPE_PATTERN, 'an exception type name such as ValueError'))
      .max(50)
      .optional(),
  })
  .strict()
  .refine(
    (r) =>
      r.initialIntervalMs === undefined ||
      r.maximumIntervalMs === undefined ||
      r.initialIntervalMs <= r.maximumIntervalMs,
    { path: ['maximumIntervalMs'], message: 'must not be below initialIntervalMs' },
  );

export const jobSchema = z
  .object({
    entrypoint: z.string().min(1),
    runtimeEnv: z.record(z.string(), z.unknown()).optional(),
    metadata: z.record(z.string(), z.string()).optional(),
  })
  .strict();

export const STEP_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

/** Names every plain object inherits (`constructor`, `toString`, …): never a step id, wherever ids become keys. */
export const PROTOTYPE_MEMBER_NAMES: ReadonlySet<string> = new Set(
  Object.getOwnPropertyNames(Object.prototype),
);

/** A step id: the pattern above, and not a name every object already has. */
export const stepIdSchema = z
  .string()
  .regex(STEP_ID_PATTERN, 'letters, digits, "_", "-" and "." (at most 128)')
  .refine((id) => !PROTOTYPE_MEMBER_NAMES.has(id), {
    message: 'is a name every JavaScript object already has; choose another',
  });

export const stepSpecSchema = z
  .object({
    id: stepIdSchema,
    task: z.string().regex(TASK_REF_PATTERN, `a task reference: ${TASK_REF_FORM}`).optional(),
    job: jobSchema.optional(),
    agent: z.string().regex(AGENT_NAME_PATTERN, 'an agent name').optional(),
    args: z.array(z.unknown()).default([]),
    kwargs: z
      .record(z.string().regex(KWARG_NAME_PATTERN, 'a Python parameter name (not a dunder)'), z.unknown())
      .default({}),
    dependsOn: z.array(stepIdSchema).default([]),
    /** Runs `task` once per item of a list: `task(item, *args, **kwargs)`; the output is the list of results. */
    map: mapSpecSchema.optional(),
    resources: stepResourcesSchema.optional(),
    retry: retrySchema.optional(),
    timeoutSeconds: z.number().min(1).max(SPEC_LIMITS.maxTimeoutSeconds).optional(),
    /** Python exception types (e.g. "ValueError") that must not be retried. */
    nonRetryableErrors: z
      .array(z.string().regex(ERROR_TYPE_PATTERN, 'an exception type name such as ValueError'))
      .max(50)
      .optional(),
  })
  .strict()
  .superRefine((step, ctx) => {
    let inputBytes: number;
    try {
      inputBytes = JSON.stringify([step.args, step.kwargs, step.map?.over ?? null]).length;
    } catch {
      ctx.addIssue({ code: 'custom', path: ['args'], message: 'args and kwargs must be plain JSON' });
      return;
    }
    if (inputBytes > SPEC_LIMITS.maxStepInputBytes)
      ctx.addIssue({
        code: 'custom',
        path: ['args'],
        message: `args and kwargs${step.map ? ' and map.over' : ''} take ${inputBytes} bytes as JSON, more than ${SPEC_LIMITS.maxStepInputBytes}: pass large data by reference (a list as another step's output)`,
      });
    const kinds = [step.task, step.job, step.agent].filter((k) => k !== undefined).length;
    if (kinds !== 1)
      ctx.addIssue({
        code: 'custom',
        path: ['task'],
        message: 'a step names exactly one of "task", "job" or "agent"',
      });
    if (step.map && step.task === undefined)
      ctx.addIssue({
        code: 'custom',
        path: ['map'],
        message: 'a map step runs a "task" over its items (not a job or an agent)',
      });
  });

/**
 * Who a pipeline runs for and how urgently: the part every pipeline shares,
 * the JSON spec and the envelope of a code-defined pipeline alike.
 */
export const pipelineIdentitySchema = z
  .object({
    /** Also what agent memory records as the pipeline: the same rule, checked before anything runs. */
    name: memoryIdentifierSchema.pipe(z.string().max(200, 'at most 200 characters')),
    project: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'letters, digits, "_", "-", "." (at most 64)'),
    user: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/)
      .optional(),
    /** 1 is most urgent, 5 least (Temporal's priorityKey). */
    priority: z.number().int().min(1).max(5).default(3),
    fairnessWeight: z.number().positive().max(1000).optional(),
  })
  .strict();

export type PipelineIdentity = z.infer<typeof pipelineIdentitySchema>;

export const pipelineSpecSchema = pipelineIdentitySchema
  .extend({
    failurePolicy: z.enum(['failFast', 'continue']).default('failFast'),
    /** How many steps may be in flight at once; the rest wait in the workflow, in spec order. */
    maxInFlightSteps: z.number().int().min(1).max(SPEC_LIMITS.maxInFlightSteps).optional(),
    /**
     * How many steps one run ends before the pipeline continues as new (default 2,000; 0: never, and
     * the pipeline must then fit one history). A run also continues once half its history budget is used.
     */
    continueAsNewAfterSteps: z
      .number()
      .int()
      .refine(
        (n) =>
          n === 0 || (n >= CONTINUATION_LIMITS.minStepsPerRun && n <= CONTINUATION_LIMITS.maxStepsPerRun),
        `0 (never), or from ${CONTINUATION_LIMITS.minStepsPerRun} to ${CONTINUATION_LIMITS.maxStepsPerRun}`,
      )
      .optional(),
    steps: z
      .array(stepSpecSchema)
      .min(1)
      .max(
        SPEC_LIMITS.maxSteps,
        `at most ${SPEC_LIMITS.maxSteps} steps in one pipeline: use a map step for more`,
      ),
  })
  .strict()
  .superRefine((spec, ctx) => {
    if (spec.continueAsNewAfterSteps === 0 && spec.steps.length > SINGLE_RUN_MAX_STEPS)
      ctx.addIssue({
        code: 'custom',
        path: ['continueAsNewAfterSteps'],
        message: `0 keeps the pipeline in one history, which holds at most ${SINGLE_RUN_MAX_STEPS} steps; this one has ${spec.steps.length}`,
      });
  });

export type StepSpec = z.infer<typeof stepSpecSchema>;
export type PipelineSpec = z.infer<typeof pipelineSpecSchema>;
/** What a caller may send (defaults not yet applied). */
export type PipelineSpecInput = z.input<typeof pipelineSpecSchema>;

/**
 * A step's life: `pending` (waiting for its dependencies), `queued` (its
 * activity waits in Temporal's task queue for Ray capacity), `running` (an
 * attempt started), then one of the final states.
 */
export type StepStatus = 'pending' | 'queued' | 'running' | 'succeeded' | 'failed' | 'skipped' | 'cancelled';

export const FINAL_STEP_STATUSES: ReadonlySet<StepStatus> = new Set([
  'succeeded',
  'failed',
  'skipped',
  'cancelled',
]);

/** How a step's resources were chosen: given by the step, learned from the agent's runs, or its defaults. */
/** A map step's items in its record; a failed map also lists which items failed for good (at most 100). */
export type StepMapItems = MapItems & { failedIndices?: number[] };

export type ResourceAllocation = 'explicit' | 'observed' | 'agent-default' | 'default';

export interface StepResult {
  status: StepStatus;
  output?: unknown;
  error?: { type: string; message: string };
  attempts: number;
  /** The agent that ran the step (the fallback agent when the primary gave up). */
  agent?: string;
  /** Set when a fallback agent ran: the agent that exhausted its retries, and why. */
  fallbackFrom?: { agent: string; error: { type: string; message: string }; attempts: number };
  node?: string;
  /** Every Ray node the step ran on, over all attempts. */
  nodes?: string[];
  /** The memory request (MB) the step finally ran with: larger than asked after an out-of-memory retry. */
  memoryMb?: number;
  /** Every finished try of the step's Ray task: how it ended, where, with how much memory. */
  tries?: Array<{
    attempt: number;
    outcome: string;
    node: string | null;
    memoryMb: number | null;
    reason?: string;
  }>;
  /** Job steps: the Ray job's submission id and the end of its log. */
  submissionId?: string;
  logTail?: string;
  /** Waiting before running: in Temporal's task queue plus in Ray's (milliseconds). */
  queuedMs?: number;
  runningMs?: number;
  /** Epoch milliseconds: scheduled as an activity, first attempt started on a worker, finished. */
  scheduledAtMs?: number;
  startedAtMs?: number;
  finishedAtMs?: number;
  /** What the step asked Ray for, and how that was decided. */
  resources?: Resources;
  allocation?: ResourceAllocation;
  /** How long the agent's runs usually take (its performance record): what a progress bar can fill against. */
  expectedRunningMs?: number;
  /** A map step: how many items there are and how they ended. */
  items?: StepMapItems;
  /** Measured by the agent host for agent steps. */
  cpuSeconds?: number;
  peakMemoryMb?: number;
}

export type PipelineStatus = 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface StepUsage {
  agent?: string;
  attempts: number;
  node?: string;
  /** Scheduled until the first attempt started (Temporal's queue). */
  temporalQueueMs: number;
  /** Submitted to Ray until running (Ray's queue; near zero when admission works). */
  rayQueueMs: number;
  runningMs: number;
  /** Measured for agent steps; otherwise the CPUs reserved times the running time. */
  cpuSeconds: number;
  cpuSecondsMeasured: boolean;
  requestedMemoryMb?: number;
  peakMemoryMb?: number;
}

export interface AgentUsage {
  steps: number;
  attempts: number;
  cpuSeconds: number;
  peakMemoryMb?: number;
  /** What the agent's history said when its steps were allocated (null: no runs yet). */
  observed: AgentPerformanceSummary | null;
}

export interface UsageReport {
  steps: Record<string, StepUsage>;
  agents: Record<string, AgentUsage>;
  totals: {
    steps: number;
    attempts: number;
    cpuSeconds: number;
    runningMs: number;
    temporalQueueMs: number;
    rayQueueMs: number;
    peakMemoryMb?: number;
  };
}

/** What an agent's past runs say: kept by the agentPerformance workflow. */
export interface AgentPerformanceSummary {
  agent: string;
  runs: number;
  attempts: number;
  failedAttempts: number;
  /** Failed attempts over all attempts. */
  failureRate: number;
  /** Over the recent successful runs. */
  meanDurationMs: number | null;
  maxDurationMs: number | null;
  peakMemoryMb: number | null;
  meanCpuSeconds: number | null;
  updatedAtMs: number | null;
}

export interface PipelineResult {
  name: string;
  project: string;
  user?: string;
  priority: number;
  status: PipelineStatus;
  /** Step ids in the order they were declared (object keys alone do not keep it for numeric ids). */
  stepOrder: string[];
  steps: Record<string, StepResult>;
  /** What a code-defined pipeline returned. */
  output?: unknown;
  usage: UsageReport;
  /**
   * Set when parts were left out to keep the result under Temporal's payload limit: says what and why.
   * Each part left out is still in history (a step's output is its activity's result).
   */
  omitted?: string;
  /** Set when some step records were left out (see `omitted`): how many steps ended in each status. */
  stepCounts?: Partial<Record<StepStatus, number>>;
}

/**
 * The most a pipeline's result (or `progress` answer) may take as JSON: Temporal refuses a payload
 * over 2 MB, and a workflow whose result is refused fails its workflow task again and again.
 */
export const MAX_RESULT_BYTES = 1_500_000;

/** The steps whose records say most when not all fit: what failed, and what is under way. */
const TELLING_STATUSES: ReadonlySet<StepStatus> = new Set(['failed', 'cancelled', 'running', 'queued']);

/** The longest error message a compact step record keeps. */
const COMPACT_ERROR_CHARS = 500;

/** A step record with only what says how it went: status, attempts, error, node and timings. */
function compactStep(step: StepResult): StepResult {
  const compact: StepResult = { status: step.status, attempts: step.attempts };
  if (step.error)
    compact.error = { type: step.error.type, message: step.error.message.slice(0, COMPACT_ERROR_CHARS) };
  if (step.agent !== undefined) compact.agent = step.agent;
  if (step.node !== undefined) compact.node = step.node;
  if (step.queuedMs !== undefined) compact.queuedMs = step.queuedMs;
  if (step.runningMs !== undefined) compact.runningMs = step.runningMs;
  return compact;
}

function countByStatus(result: PipelineResult): Partial<Record<StepStatus, number>> {
  const counts: Partial<Record<StepStatus, number>> = {};
  for (const id of result.stepOrder) {
    const status = result.steps[id]!.status;
    counts[status] = (counts[status] ?? 0) + 1;
  }
  return counts;
}

function mapSteps(
  result: PipelineResult,
  keep: (step: StepResult) => boolean,
  shape: (step: StepResult) => StepResult,
): Pick<PipelineResult, 'stepOrder' | 'steps'> {
  const steps: Record<string, StepResult> = Object.create(null);
  const stepOrder = result.stepOrder.filter((id) => keep(result.steps[id]!));
  for (const id of stepOrder) steps[id] = shape(result.steps[id]!);
  return { stepOrder, steps };
}

/**
 * The result as it may be returned: whole when it fits, else lighter one tier at a time until it does:
 * (1) without the steps' outputs (each is its activity's result in history); (2) without the
 * pipeline's own output; (3) compact step records and no per-step usage; (4) only the steps that
 * failed, were cancelled or are under way, with `stepCounts`; (5) no step records, only
 * `stepCounts`. `omitted` names the tier and the size that forced it. Pure and deterministic; with
 * bounded names (SPEC_LIMITS) the last tier always fits.
 */
export function boundedResult(result: PipelineResult, maxBytes: number = MAX_RESULT_BYTES): PipelineResult {
  const bytes = JSON.stringify(result).length;
  if (bytes <= maxBytes) return result;
  const why = `the whole result takes ${bytes} bytes, more than ${maxBytes}`;
  const { output: _pipelineOutput, ...withoutPipelineOutput } = result;
  const withoutOutput = (step: StepResult): StepResult => {
    const { output: _output, ...rest } = step;
    return rest;
  };
  const compactUsage: UsageReport = { ...result.usage, steps: {} };
  const counts = countByStatus(result);
  const tiers: Array<() => PipelineResult> = [
    () => ({ ...result, ...mapSteps(result, () => true, withoutOutput), omitted: `step outputs: ${why}` }),
    () => ({
      ...withoutPipelineOutput,
      ...mapSteps(result, () => true, withoutOutput),
      omitted: `step outputs and the pipeline's own output: ${why}`,
    }),
    () => ({
      ...withoutPipelineOutput,
      ...mapSteps(result, () => true, compactStep),
      usage: compactUsage,
      omitted: `outputs, step details (compact records kept) and per-step usage: ${why}`,
    }),
    () => ({
      ...withoutPipelineOutput,
      ...mapSteps(result, (step) => TELLING_STATUSES.has(step.status), compactStep),
      usage: compactUsage,
      stepCounts: counts,
      omitted: `outputs, per-step usage and the records of steps that succeeded, were skipped or wait (see stepCounts): ${why}`,
    }),
  ];
  for (const tier of tiers) {
    const lighter = tier();
    if (JSON.stringify(lighter).length <= maxBytes) return lighter;
  }
  return {
    ...withoutPipelineOutput,
    stepOrder: [],
    steps: {},
    usage: compactUsage,
    stepCounts: counts,
    omitted: `outputs, per-step usage and every step record (see stepCounts): ${why}`,
  };
}
