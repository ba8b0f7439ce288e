/**
 * The messages a running pipeline answers — the `pipeline` workflow and every
 * code-defined pipeline alike — with the zod schemas their arguments are
 * validated against. Clients (the CLI, tests, `temporal workflow update`)
 * import these constants; the names are the wire contract.
 *
 *   progress          query   the pipeline's state: every step's status, attempts, node, timings
 *   setPriority       update  new priority for every step not yet running (1 = most urgent)
 *   cancelStep        update  cancel one step; its dependants are skipped
 *   setStepResources  update  change what a step that has not started asks for (JSON pipelines)
 *   addStep           update  add a step whose dependencies exist (JSON pipelines)
 *   stepAttemptStarted signal sent by the node-group worker when a step's attempt starts
 */
import { defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
import { z } from 'zod';
import { stepResourcesSchema, type Resources } from '../schemas/resources';
import { stepIdSchema, stepSpecSchema, type PipelineResult } from '../schemas/pipeline-spec';

export const setPriorityInputSchema = z.object({ priority: z.number().int().min(1).max(5) }).strict();
export const cancelStepInputSchema = z
  .object({ stepId: stepIdSchema, reason: z.string().max(500).optional() })
  .strict();
export const setStepResourcesInputSchema = z
  .object({ stepId: stepIdSchema, resources: stepResourcesSchema })
  .strict();
export const addStepInputSchema = z.object({ step: stepSpecSchema }).strict();
export const stepAttemptStartedSchema = z
  .object({
    activityId: z.string().min(1),
    attempt: z.number().int().min(1),
    /** When the server first scheduled the activity: the start of its wait in Temporal's queue. */
    scheduledAtMs: z.number().int().min(0).optional(),
    startedAtMs: z.number().int().min(0),
  })
  .strict();

export type SetPriorityInput = z.input<typeof setPriorityInputSchema>;
export type CancelStepInput = z.input<typeof cancelStepInputSchema>;
export type SetStepResourcesInput = z.input<typeof setStepResourcesInputSchema>;
export type AddStepInput = z.input<typeof addStepInputSchema>;
export type StepAttemptStarted = z.infer<typeof stepAttemptStartedSchema>;

export interface PriorityChanged {
  priority: number;
  /** Step activities already in Temporal's queue whose priority was changed in place. */
  reprioritizedSteps: string[];
}
export interface StepCancelled {
  stepId: string;
  /** What the step was doing when cancelled. */
  was: 'pending' | 'queued' | 'running';
}
export interface StepResourcesChanged {
  stepId: string;
  resources: Resources;
  group: string;
}
export interface StepAdded {
  stepId: string;
  dependsOn: string[];
}

export const progressQuery = defineQuery<PipelineResult>('progress');
export const setPriorityUpdate = defineUpdate<PriorityChanged, [SetPriorityInput]>('setPriority');
export const cancelStepUpdate = defineUpdate<StepCancelled, [CancelStepInput]>('cancelStep');
export const setStepResourcesUpdate = defineUpdate<StepResourcesChanged, [SetStepResourcesInput]>(
  'setStepResources',
);
export const addStepUpdate = defineUpdate<StepAdded, [AddStepInput]>('addStep');
export const stepAttemptStartedSignal = defineSignal<[StepAttemptStarted]>('stepAttemptStarted');

/** Activity ids of step activities: `step:<id>`, or `step:<id>~<fallback agent>`. Never numeric, so never
 * equal to the sequence numbers the SDK gives other activities. */
export function stepActivityId(stepId: string, fallbackAgent?: string): string {
  return fallbackAgent === undefined ? `step:${stepId}` : `step:${stepId}~${fallbackAgent}`;
}
