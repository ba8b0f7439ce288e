import { z } from 'zod';
import { resourcesSchema } from './resources';
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

export const pipelineSpecSchema = z
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
    failurePolicy: z.enum(['failFast', 'continue']).default('failFast'),
    steps: z.array(stepSpecSchema).min(1),
  })
  .strict();

export type StepSpec = z.infer<typeof stepSpecSchema>;
export type PipelineSpec = z.infer<typeof pipelineSpecSchema>;
/** What a caller may send (defaults not yet applied). */
export type PipelineSpecInput = z.input<typeof pipelineSpecSchema>;

export type StepStatus = 'pending' | 'running' | 'succeeded' | 'failed' | 'skipped' | 'cancelled';

export interface StepResult {
  status: StepStatus;
  output?: unknown;
  error?: { type: string; message: string };
  attempts: number;
  node?: string;
  /** Every Ray node the step ran on, over all attempts. */
  nodes?: string[];
  queuedMs?: number;
  runningMs?: number;
}

export interface PipelineResult {
  name: string;
  project: string;
  steps: Record<string, StepResult>;
}
