/**
 * The autoscaler workflow's input, its runtime settings and what it carries
 * from one run to the next (continue-as-new). Zod, workflow-safe: the same
 * schemas check `temporal workflow start --input …`, the `configure` update
 * and the carried state.
 */
import { z } from 'zod';
// The policy's own state schema (zod only, workflow-safe), so the carried state is checked as the policy reads it.
import { policyStateSchema } from '../autoscaling/policy-types';

const groupName = z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'a node group name');

export const autoscalerBudgetSchema = z
  .object({
    /** Node-hours the cluster may use per period (or over the autoscaler's life). */
    nodeHours: z.number().positive(),
    /** Usage starts again from zero every this many hours; absent: it never does. */
    periodHours: z.number().positive().optional(),
    /**
     * A node is added only if the rest of the budget pays for every node for
     * this long (default: the idle timeout, about the shortest life of a new node).
     */
    lookaheadMs: z.number().int().positive().optional(),
  })
  .strict();

/** What an operator may change while the loop runs (the `configure` update takes any part of it). */
export const autoscalerSettingsSchema = z
  .object({
    /** Time between ticks. */
    tickIntervalMs: z.number().int().min(100).max(600_000).default(2_000),
    /** A node is removed only after running nothing for this long. */
    idleTimeoutMs: z.number().int().min(0).default(60_000),
    /** After a scale event, the opposite direction waits this long (no flapping). */
    cooldownMs: z.number().int().min(0).default(30_000),
    /** At most this many nodes are added to one group in one tick. */
    maxScaleUpStep: z.number().int().min(1).default(4),
    /** Count the steps expected this many seconds ahead as pending already (0: off). */
    anticipationSeconds: z.number().min(0).default(0),
    budget: autoscalerBudgetSchema.nullable().default(null),
  })
  .strict();

export const autoscalerSettingsPatchSchema = z
  .object({
    tickIntervalMs: z.number().int().min(100).max(600_000),
    idleTimeoutMs: z.number().int().min(0),
    cooldownMs: z.number().int().min(0),
    maxScaleUpStep: z.number().int().min(1),
    anticipationSeconds: z.number().min(0),
    budget: autoscalerBudgetSchema.nullable(),
  })
  .partial()
  .strict();

export const scaleEventSchema = z
  .object({
    atMs: z.number(),
    group: z.string(),
    direction: z.enum(['up', 'down']),
    /** Nodes added, or removed. */
    count: z.number().int().min(1),
    nodes: z.array(z.string()).default([]),
  })
  .strict();

/** What one run hands to the next. */
export const autoscalerCarrySchema = z
  .object({
    policyState: policyStateSchema.default({ groups: {} }),
    /** Node-hours used in the current budget period. */
    nodeHoursUsed: z.number().min(0).default(0),
    budgetPeriodStartMs: z.number().nullable().default(null),
    /** The previous observation's time and billable nodes: usage accrues from it. */
    lastObservedAtMs: z.number().nullable().default(null),
    lastBillableNodes: z.number().int().min(0).default(0),
    /** The most recent scale events, oldest first (at most SCALE_EVENTS_KEPT). */
    events: z.array(scaleEventSchema).default([]),
    /** Ticks over every run so far. */
    ticks: z.number().int().min(0).default(0),
    runs: z.number().int().min(1).default(1),
  })
  .strict();

export const autoscalerInputSchema = z
  .object({
    /** Which node groups to scale, by name; absent: every group the worker serves. */
    groups: z.array(groupName).min(1).optional(),
    ...autoscalerSettingsSchema.shape,
    /** Start paused (the `resume` signal starts it). */
    paused: z.boolean().default(false),
    /** Continue-as-new after this many ticks even if Temporal has not suggested it yet. */
    maxTicksPerRun: z.number().int().min(1).default(1_000),
    /** Set by the autoscaler itself when it continues as new. */
    carry: autoscalerCarrySchema.optional(),
  })
  .strict();

/**
 * The longest the observe activity waits for new backlog between ticks (the rest of a
 * longer tick is a timer): well inside that activity's one-minute timeout.
 */
export const MAX_OBSERVE_WAIT_MS = 30_000;

export const SCALE_EVENTS_KEPT = 100;

/** One autoscaler per cluster: start it with this id and the USE_EXISTING conflict policy. */
export const AUTOSCALER_WORKFLOW_ID = 'pantheon-autoscaler';

export type AutoscalerBudget = z.infer<typeof autoscalerBudgetSchema>;
export type AutoscalerSettings = z.infer<typeof autoscalerSettingsSchema>;
export type AutoscalerSettingsPatch = z.infer<typeof autoscalerSettingsPatchSchema>;
export type ScaleEvent = z.infer<typeof scaleEventSchema>;
export type AutoscalerCarry = z.infer<typeof autoscalerCarrySchema>;
export type AutoscalerInput = z.infer<typeof autoscalerInputSchema>;
/** What a caller may send (defaults not yet applied). */
export type AutoscalerInputRaw = z.input<typeof autoscalerInputSchema>;
