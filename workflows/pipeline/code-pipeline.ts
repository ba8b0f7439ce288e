/**
 * Helpers for code-defined pipelines: a pipeline is a Temporal workflow whose
 * body calls agents (and plain tasks) as steps, in sequence, in parallel
 * (`fanOut`, `join`) or however TypeScript can express it.
 *
 *   export const researchReport = definePipeline(
 *     { name: 'research-report', description: '…', input: z.object({ topic: z.string() }) },
 *     async (run, { topic }) => {
 *       const sources = await run.agent('gather', gatherer, { args: [topic] });
 *       …
 *     },
 *   );
 *
 * `definePipeline` returns a declaration, not a workflow: the deployment lists
 * its declarations once (agents/index.ts) and `pantheonWorkflows`
 * (workflows/index.ts) registers them, so the worker and the CLI read the same
 * list. Every code-defined pipeline takes `{ project, priority?, user?,
 * fairnessWeight?, input }`, answers the same query and updates as the JSON
 * `pipeline` workflow (progress, setPriority, cancelStep), sets the same search
 * attributes and returns the same result shape, with the body's return value
 * as `output`. Workflow code: deterministic.
 */
import { describeZodError, type IssueSource } from '../../core/issues';
import {
  ApplicationFailure,
  allHandlersFinished,
  condition,
  isCancellation,
  setHandler,
} from '@temporalio/workflow';
import { z } from 'zod';
import type { AgentCatalog, AgentDefinition } from '../../core/agents';
import {
  cancelStepUpdate,
  progressQuery,
  setPriorityUpdate,
  stepAttemptStartedSignal,
} from '../../core/messages/pipeline';
import { pipelineIdentitySchema } from '../../core/schemas/pipeline-spec';
import { isBlobRef, type BlobRef } from '../../core/schemas/blob-ref';
import { mapCallOf } from '../../core/schemas/map-step';
import { PipelineRun } from './run';
import { jsonBytes } from '../../core/history-budget';
import {
  mapSpecSchema,
  SINGLE_RUN_MAX_STEPS,
  SPEC_LIMITS,
  stepIdSchema,
  retrySchema,
  type MapSpec,
  type PipelineResult,
  type StepResult,
  type StepSpec,
} from '../../core/schemas/pipeline-spec';
import type { Resources } from '../../core/schemas/resources';

/** What every code-defined pipeline is started with: who runs it, and its own `input`. */
export const codePipelineEnvelopeSchema = pipelineIdentitySchema
  .omit({ name: true })
  .extend({
    input: z.unknown(),
    /** Steps in flight at once; the body's further steps wait (as pending) until running ones end. */
    maxInFlightSteps: z.number().int().min(1).max(SPEC_LIMITS.maxInFlightSteps).optional(),
  })
  .strict();

export interface StepOptions<Args extends unknown[] = unknown[]> {
  args?: Args;
  kwargs?: Record<string, unknown>;
  /** Overrides what the agent (or its record) would ask for. */
  resources?: Resources;
  retry?: z.input<typeof retrySchema>;
  timeoutSeconds?: number;
}

/** How a map step runs its items (see `mapSpecSchema`). */
export type MapOptions = StepOptions & Omit<MapSpec, 'over'>;

/** A map's outputs in item order; a large list comes back as a blob reference, to pass on to a step as is. */
export type MapOutput<T> = T[] | BlobRef;

/** A step did not succeed; `step` says how it ended. Thrown into the pipeline body by `run.agent`/`run.task`. */
export function stepFailure(stepId: string, step: StepResult): ApplicationFailure {
  const cancelled = step.status === 'cancelled';
  return ApplicationFailure.create({
    type: cancelled ? 'StepCancelled' : 'StepFailed',
    message: `step "${stepId}" ${step.status}${step.error ? `: ${step.error.type}: ${step.error.message}` : ''}`,
    nonRetryable: true,
    details: [{ stepId, step }],
  });
}

/** What a pipeline body gets: run steps, and know who it runs for. */
export class PipelineSteps {
  constructor(
    private readonly run: PipelineRun,
    readonly project: string,
  ) {}

  /**
   * Runs `agent` as step `id`; resolves to its output (from a fallback agent if it came to that).
   * Typed by the agent's own `args` and `output` schemas when it declares them; `T` names the
   * output of an agent that does not.
   */
  async agent<Args extends unknown[], Output, T = Output>(
    id: string,
    agent: AgentDefinition<Args, Output>,
    options: StepOptions<Args> = {},
  ): Promise<T> {
    return this.step<T>({ id, agent: agent.name, ...options });
  }

  /** Runs a plain Ray task (`package.module:function`) as step `id`. */
  async task<T = unknown>(id: string, task: string, options: StepOptions = {}): Promise<T> {
    return this.step<T>({ id, task, ...options });
  }

  /**
   * Runs `task` once per item of `over` as step `id` (`task(item, *args, **kwargs)`), each item its
   * own Ray task under the step's one activity; resolves to the outputs in item order. `over` is a
   * list, or a step's output that is one (a blob reference stands for the list it holds).
   */
  async map<T = unknown>(
    id: string,
    task: string,
    over: readonly unknown[] | BlobRef,
    options: MapOptions = {},
  ): Promise<MapOutput<T>> {
    const { concurrency, maxItemAttempts, maxFailedItems, ...step } = options;
    const how = mapSpecSchema
      .omit({ over: true })
      .safeParse({ concurrency, maxItemAttempts, maxFailedItems });
    if (!how.success)
      throw ApplicationFailure.nonRetryable(
        `step "${id}": ${describeZodError(how.error, 'map')}`,
        'InvalidStep',
      );
    if (!Array.isArray(over) && !isBlobRef(over))
      throw ApplicationFailure.nonRetryable(
        `step "${id}": map.over: a list, or a step's output that is one`,
        'InvalidStep',
      );
    return this.step<MapOutput<T>>({ id, task, ...step, map: { ...how.data, over: [] } }, over);
  }

  /** The full record of a step that ran (status, attempts, node, timings). */
  result(id: string): StepResult | undefined {
    return this.run.records.results[id];
  }

  /** Runs one step; `mapOver` is a map step's list (its spec's `map.over` is not read). */
  private async step<T>(
    request: Omit<StepOptions, 'args' | 'kwargs'> & Partial<StepSpec> & { id: string },
    mapOver?: unknown,
  ): Promise<T> {
    const id = stepIdSchema.safeParse(request.id);
    if (!id.success)
      throw ApplicationFailure.nonRetryable(
        `step id "${request.id}": ${describeZodError(id.error)}`,
        'InvalidStep',
      );
    if (this.run.records.results[request.id] !== undefined)
      throw ApplicationFailure.nonRetryable(`step id "${request.id}" is used twice`, 'InvalidStep');
    // A body's steps share one history (a code pipeline cannot continue as new: its state is the body's
    // own), so their number is refused where that history would come near Temporal's event limit.
    if (this.run.records.order.length >= SINGLE_RUN_MAX_STEPS)
      throw ApplicationFailure.nonRetryable(
        `step "${request.id}": a code-defined pipeline runs at most ${SINGLE_RUN_MAX_STEPS} steps (one history); ` +
          'use run.map for many items of one task, or a JSON pipeline, which continues as new',
        'TooManySteps',
      );
    const spec: StepSpec = {
      id: request.id,
      ...(request.task !== undefined && { task: request.task }),
      ...(request.agent !== undefined && { agent: request.agent }),
      args: request.args ?? [],
      kwargs: request.kwargs ?? {},
      dependsOn: [],
      ...(request.resources !== undefined && { resources: request.resources }),
      ...(request.retry !== undefined && { retry: request.retry }),
      ...(request.timeoutSeconds !== undefined && { timeoutSeconds: request.timeoutSeconds }),
      ...(request.map !== undefined && { map: request.map }),
    };
    const result = await this.run.runStep(spec, {
      args: spec.args,
      kwargs: spec.kwargs,
      ...(spec.map && { map: mapCallOf(spec, mapOver) }),
    });
    if (result.status !== 'succeeded') throw stepFailure(request.id, result);
    return result.output as T;
  }
}

/** Runs `work` for every item at once; resolves to the results in item order (fails on the first failure). */
export function fanOut<T, R>(
  items: readonly T[],
  work: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  return Promise.all(items.map((item, index) => work(item, index)));
}

/** Waits for named steps started in parallel; resolves to their outputs under the same names. */
export async function join<T extends Record<string, Promise<unknown>>>(
  started: T,
): Promise<{ [K in keyof T]: Awaited<T[K]> }> {
  const entries = Object.entries(started);
  const values = await Promise.all(entries.map(([, promise]) => promise));
  return Object.fromEntries(entries.map(([key], i) => [key, values[i]])) as { [K in keyof T]: Awaited<T[K]> };
}

export interface CodePipelineOptions<S extends z.ZodType> {
  /** The pipeline's name: what `pantheon run <name>` and the PantheonPipeline search attribute use. */
  name: string;
  description: string;
  input: S;
}

/** A code-defined pipeline as declared: registered by `pantheonWorkflows`, listed by the CLI. */
export interface PipelineDeclaration<S extends z.ZodType = z.ZodType> {
  readonly name: string;
  readonly description: string;
  /** The Temporal workflow type it is started as: `workflowTypeOf(name)`. */
  readonly workflowType: string;
  readonly input: S;
  readonly body: (run: PipelineSteps, input: z.output<S>) => Promise<unknown>;
}

/** What a client starts a declared pipeline with. */
export type CodePipelineStart<S extends z.ZodType> = Omit<
  z.input<typeof codePipelineEnvelopeSchema>,
  'input'
> & {
  input: z.input<S>;
};

/** `research-report` → `researchReport`: the workflow type a code-defined pipeline is started as. */
export function workflowTypeOf(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

/** Declares a code-defined pipeline; list it in agents/index.ts so the worker registers it. */
export function definePipeline<S extends z.ZodType>(
  options: CodePipelineOptions<S>,
  body: (run: PipelineSteps, input: z.output<S>) => Promise<unknown>,
): PipelineDeclaration<S> {
  return Object.freeze({ ...options, workflowType: workflowTypeOf(options.name), body });
}

function invalidInput(error: IssueSource, prefix: string): ApplicationFailure {
  return ApplicationFailure.create({
    type: 'InvalidPipelineInput',
    message: `invalid pipeline input: ${describeZodError(error, prefix)}`,
    nonRetryable: true,
  });
}

/** The workflow of a declared pipeline: validates the start, runs the body, returns the run's result. */
export async function runCodePipeline(
  declaration: PipelineDeclaration,
  agents: AgentCatalog,
  start: unknown,
): Promise<PipelineResult> {
  const envelope = codePipelineEnvelopeSchema.safeParse(start);
  if (!envelope.success) throw invalidInput(envelope.error, '');
  const input = declaration.input.safeParse(envelope.data.input);
  if (!input.success) throw invalidInput(input.error, 'input');

  const { input: _input, maxInFlightSteps, ...identity } = envelope.data;
  const run = new PipelineRun({ ...identity, name: declaration.name }, agents);
  if (maxInFlightSteps !== undefined) run.limitStepsInFlight(maxInFlightSteps);

  // Every message a code-defined pipeline answers (core/messages/pipeline.ts), in one place.
  setHandler(progressQuery, () => run.snapshot());
  setHandler(stepAttemptStartedSignal, (raw) => run.records.onAttemptStarted(raw));
  setHandler(setPriorityUpdate, (raw) => run.setPriority(raw), {
    validator: (raw) => run.validateSetPriority(raw),
  });
  setHandler(cancelStepUpdate, (raw) => run.cancelStep(raw), {
    validator: (raw) => run.validateCancelStep(raw),
  });

  await run.load();
  run.begin(jsonBytes(start));
  let output: unknown;
  try {
    output = await declaration.body(new PipelineSteps(run, envelope.data.project), input.data);
  } catch (err) {
    // Steps still running when the body gave up (a failed branch of a fan-out) are stopped, not abandoned.
    run.stepsScope.cancel();
    await condition(() =>
      run.records.order.every(
        (id) => run.records.results[id]!.status !== 'running' && run.records.results[id]!.status !== 'queued',
      ),
    ).catch(() => undefined);
    const result = run.finish(isCancellation(err) ? 'cancelled' : 'failed');
    if (isCancellation(err)) throw err;
    if (err instanceof ApplicationFailure)
      throw ApplicationFailure.create({
        type: err.type ?? 'PipelineFailed',
        message: err.message,
        nonRetryable: true,
        details: [result],
      });
    throw err;
  }
  const result = run.finish('succeeded', output);
  await condition(allHandlersFinished);
  return result;
}
