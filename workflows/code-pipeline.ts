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
 * Every code-defined pipeline takes `{ project, priority?, user?,
 * fairnessWeight?, input }`, answers the same query and updates as the JSON
 * `pipeline` workflow (progress, setPriority, cancelStep), sets the same search
 * attributes and returns the same result shape, with the body's return value
 * as `output`. Workflow code: deterministic.
 */
import { ApplicationFailure, allHandlersFinished, condition, isCancellation } from '@temporalio/workflow';
import { z } from 'zod';
import type { AgentDefinition } from '../agents/define';
import { agentCatalog } from '../agents/catalog';
import { describeIssues, formatPath } from './dag';
import { PipelineRun } from './pipeline-run';
import {
  STEP_ID_PATTERN,
  retrySchema,
  type PipelineResult,
  type StepResult,
  type StepSpec,
} from './schemas/pipeline-spec';
import type { Resources } from './schemas/resources';

/** What every code-defined pipeline is started with, around its own `input`. */
export const codePipelineEnvelopeSchema = z
  .object({
    project: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'letters, digits, "_", "-", "." (at most 64)'),
    user: z
      .string()
      .regex(/^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/)
      .optional(),
    priority: z.number().int().min(1).max(5).default(3),
    fairnessWeight: z.number().positive().max(1000).optional(),
    input: z.unknown(),
  })
  .strict();

export type CodePipelineStart<I> = Omit<z.input<typeof codePipelineEnvelopeSchema>, 'input'> & { input: I };

export interface StepOptions {
  args?: unknown[];
  kwargs?: Record<string, unknown>;
  /** Overrides what the agent (or its record) would ask for. */
  resources?: Resources;
  retry?: z.input<typeof retrySchema>;
  timeoutSeconds?: number;
}

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

  /** Runs `agent` as step `id`; resolves to its output (from a fallback agent if it came to that). */
  async agent<T = unknown>(id: string, agent: AgentDefinition, options: StepOptions = {}): Promise<T> {
    return this.step<T>({ id, agent: agent.name, ...options });
  }

  /** Runs a plain Ray task (`package.module:function`) as step `id`. */
  async task<T = unknown>(id: string, task: string, options: StepOptions = {}): Promise<T> {
    return this.step<T>({ id, task, ...options });
  }

  /** The full record of a step that ran (status, attempts, node, timings). */
  result(id: string): StepResult | undefined {
    return this.run.results[id];
  }

  private async step<T>(
    request: Omit<StepOptions, 'args' | 'kwargs'> & Partial<StepSpec> & { id: string },
  ): Promise<T> {
    if (!STEP_ID_PATTERN.test(request.id))
      throw ApplicationFailure.nonRetryable(
        `step id "${request.id}": letters, digits, "_", "-" and "."`,
        'InvalidStep',
      );
    if (this.run.results[request.id] !== undefined)
      throw ApplicationFailure.nonRetryable(`step id "${request.id}" is used twice`, 'InvalidStep');
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
    };
    const result = await this.run.runStep(spec, { args: spec.args, kwargs: spec.kwargs });
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

export interface CodePipelineWorkflow<S extends z.ZodType> {
  (start: unknown): Promise<PipelineResult>;
  readonly pipeline: { name: string; description: string; workflowType: string; input: S };
}

/** `research-report` → `researchReport`: the export name a code-defined pipeline is registered under. */
export function workflowTypeOf(name: string): string {
  return name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());
}

function invalidInput(
  issues: { path: PropertyKey[]; message: string }[],
  prefix: string,
): ApplicationFailure {
  const described = describeIssues(
    issues.map((i) => ({
      path: [prefix, formatPath(i.path)].filter(Boolean).join('.') || '(input)',
      message: i.message,
    })),
  );
  return ApplicationFailure.create({
    type: 'InvalidPipelineInput',
    message: `invalid pipeline input: ${described}`,
    nonRetryable: true,
  });
}

/**
 * Defines a code-defined pipeline. Export the returned function from
 * workflows/index.ts under `workflowTypeOf(name)` so the worker registers it.
 */
export function definePipeline<S extends z.ZodType>(
  options: CodePipelineOptions<S>,
  body: (run: PipelineSteps, input: z.output<S>) => Promise<unknown>,
): CodePipelineWorkflow<S> {
  const workflowType = workflowTypeOf(options.name);
  const workflow = async (start: unknown): Promise<PipelineResult> => {
    const envelope = codePipelineEnvelopeSchema.safeParse(start);
    if (!envelope.success) throw invalidInput(envelope.error.issues, '');
    const input = options.input.safeParse(envelope.data.input);
    if (!input.success) throw invalidInput(input.error.issues, 'input');

    const run = new PipelineRun(
      {
        name: options.name,
        project: envelope.data.project,
        user: envelope.data.user,
        priority: envelope.data.priority,
        fairnessWeight: envelope.data.fairnessWeight,
      },
      agentCatalog,
    );
    await run.load();
    run.begin();
    let output: unknown;
    try {
      output = await body(new PipelineSteps(run, envelope.data.project), input.data);
    } catch (err) {
      // Steps still running when the body gave up (a failed branch of a fan-out) are stopped, not abandoned.
      run.stepsScope.cancel();
      await condition(() =>
        run.order.every(
          (id) => run.results[id]!.status !== 'running' && run.results[id]!.status !== 'queued',
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
  };
  Object.defineProperty(workflow, 'name', { value: workflowType });
  return Object.assign(workflow, {
    pipeline: { name: options.name, description: options.description, workflowType, input: options.input },
  });
}
