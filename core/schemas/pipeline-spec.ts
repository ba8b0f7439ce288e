import { z } from 'zod';
import { resourcesSchema, type Resources } from './resources';
import { TASK_REF_PATTERN } from './task-ref';

/** A step's output used as another step's input: `{"$step": "a"}`, optionally with a dotted `path` into it. */
export const stepRefSchema = z.object({ $step: z.string().min(1), path: z.string().optional() }).strict();
export type StepRef = z.infer<typeof stepRefSchema>;

export const retrySchema = z
  .object({
    maximumAttempts: z.number().int().min(1).optional(),
    initialIntervalMs: z.number().int().min(1).optional(),
    backoffCoefficient: z.number().min(1).optional(),
    maximumIntervalMs: z.number().int().min(1).optional(),
    nonRetryableErrorTypes: z.array(z.string()).optional(),
  })
  .strict();

export const jobSchema = z
  .object({
    entrypoint: z.string().min(1),
    runtimeEnv: z.record(z.string(), z.unknown()).optional(),
    metadata: z.record(z.string(), z.string()).optional(),
  })
  .strict();

export const STEP_ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export const stepSpecSchema = z
  .object({
    id: z.string().regex(STEP_ID_PATTERN, 'letters, digits, "_", "-" and "." (at most 128)'),
    task: z.string().regex(TASK_REF_PATTERN, 'a task reference: package.module:function').optional(),
    job: jobSchema.optional(),
    agent: z.string().min(1).optional(),
    args: z.array(z.unknown()).default([]),
    kwargs: z.record(z.string(), z.unknown()).default({}),
    dependsOn: z.array(z.string()).default([]),
    resources: resourcesSchema.optional(),
    retry: retrySchema.optional(),
    timeoutSeconds: z.number().positive().optional(),
    /** Python exception types (e.g. "ValueError") that must not be retried. */
    nonRetryableErrors: z.array(z.string()).optional(),
  })
  .strict()
  .superRefine((step, ctx) => {
    const kinds = [step.task, step.job, step.agent].filter((k) => k !== undefined).length;
    if (kinds !== 1)
      ctx.addIssue({
        code: 'custom',
        path: ['task'],
        message: 'a step names exactly one of "task", "job" or "agent"',
      });
  });

/**
 * Who a pipeline runs for and how urgently: the part every pipeline shares,
 * the JSON spec and the envelope of a code-defined pipeline alike.
 */
export const pipelineIdentitySchema = z
  .object({
    name: z.string().min(1).max(200),
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
    steps: z.array(stepSpecSchema).min(1),
  })
  .strict();

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
}
