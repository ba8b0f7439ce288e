/**
 * The data-defined pipeline: workflow type `pipeline` on task queue `pantheon`.
 * It validates the JSON spec, plans placement, then runs the DAG: every step
 * whose dependencies have succeeded is started at once, as an activity on its
 * node group's task queue, with the pipeline's priority and fairness key.
 */
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  defineQuery,
  isCancellation,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { ControlActivities, RayTaskActivities } from '../activities';
import { blockedSteps, describeIssues, parsePipelineSpec, readySteps, resolveStepRefs, type SpecIssue } from './dag';
import type { PipelineResult, PipelineSpec, StepResult, StepSpec, StepStatus } from './schemas/pipeline-spec';
import { planSteps } from './step-plan';
import { nodeGroupTaskQueue } from './task-queues';

export const progressQuery = defineQuery<PipelineResult>('progress');

const { loadPlacementContext } = proxyLocalActivities<ControlActivities>({ startToCloseTimeout: '30s' });

/** Heartbeats carry the Ray task state and are how cancellation reaches a step. */
const STEP_HEARTBEAT_TIMEOUT = '5s';
const DEFAULT_STEP_TIMEOUT_SECONDS = 3600;
const DEFAULT_RETRY = { initialIntervalMs: 1000, backoffCoefficient: 2, maximumIntervalMs: 30_000, maximumAttempts: 5 };

export function invalidSpec(issues: SpecIssue[]): ApplicationFailure {
  return ApplicationFailure.create({
    type: 'InvalidPipelineSpec',
    message: `invalid pipeline spec: ${describeIssues(issues)}`,
    nonRetryable: true,
    details: [issues],
  });
}

export function fairnessKeyOf(spec: PipelineSpec): string {
  return spec.user ? `${spec.project}/${spec.user}` : spec.project;
}

function stepActivityOptions(spec: PipelineSpec, step: StepSpec, group: string): ActivityOptions {
  const retry = { ...DEFAULT_RETRY, ...step.retry };
  return {
    taskQueue: nodeGroupTaskQueue(group),
    startToCloseTimeout: `${step.timeoutSeconds ?? DEFAULT_STEP_TIMEOUT_SECONDS}s`,
    heartbeatTimeout: STEP_HEARTBEAT_TIMEOUT,
    retry: {
      initialInterval: retry.initialIntervalMs,
      backoffCoefficient: retry.backoffCoefficient,
      maximumInterval: retry.maximumIntervalMs,
      maximumAttempts: retry.maximumAttempts,
      nonRetryableErrorTypes: [...(retry.nonRetryableErrorTypes ?? []), ...(step.nonRetryableErrors ?? [])],
    },
    priority: { priorityKey: spec.priority, fairnessKey: fairnessKeyOf(spec), fairnessWeight: spec.fairnessWeight },
    summary: `${step.id}: ${step.task ?? step.agent ?? 'job'}`,
  };
}

/** The innermost failure of an activity error, with the attempt count the activity reported. */
function failureOf(err: unknown): { type: string; message: string; attempts: number } {
  let cause: unknown = err;
  while (typeof cause === 'object' && cause !== null && 'cause' in cause && (cause as { cause?: unknown }).cause)
    cause = (cause as { cause: unknown }).cause;
  const failure = cause instanceof ApplicationFailure ? cause : undefined;
  const details = failure?.details?.[0] as { attempt?: number } | undefined;
  return {
    type: failure?.type ?? (cause instanceof Error ? cause.name : 'Error'),
    message: cause instanceof Error ? cause.message : String(cause),
    attempts: details?.attempt ?? 0,
  };
}

export async function pipeline(input: unknown): Promise<PipelineResult> {
  const parsed = parsePipelineSpec(input);
  if (!parsed.ok) throw invalidSpec(parsed.issues);
  const spec = parsed.spec;

  const results: Record<string, StepResult> = {};
  const status: Record<string, StepStatus> = {};
  const outputs: Record<string, unknown> = {};
  for (const step of spec.steps) {
    status[step.id] = 'pending';
    results[step.id] = { status: 'pending', attempts: 0 };
  }
  setHandler(progressQuery, () => ({ name: spec.name, project: spec.project, steps: results }));

  const plan = planSteps(spec, await loadPlacementContext());
  if (!plan.ok) throw invalidSpec(plan.issues);
  const groups = plan.groups;

  upsertSearchAttributes({
    PantheonProject: [spec.project],
    PantheonPipeline: [spec.name],
    PantheonStatus: ['running'],
  });

  const setStatus = (id: string, next: StepStatus) => {
    status[id] = next;
    results[id] = { ...results[id], status: next, attempts: results[id]?.attempts ?? 0 };
  };
  let stopScheduling = false;
  const stepsScope = new CancellationScope();

  async function runStep(step: StepSpec): Promise<void> {
    setStatus(step.id, 'running');
    const { runRayTask } = proxyActivities<RayTaskActivities>(stepActivityOptions(spec, step, groups[step.id]!));
    try {
      const out = await stepsScope.run(() =>
        runRayTask({
          stepId: step.id,
          task: step.task!,
          args: resolveStepRefs(step.args, outputs) as unknown[],
          kwargs: resolveStepRefs(step.kwargs, outputs) as Record<string, unknown>,
          resources: step.resources,
        }),
      );
      outputs[step.id] = out.output;
      results[step.id] = {
        status: 'succeeded',
        output: out.output,
        attempts: out.attempt,
        node: out.node ?? undefined,
        nodes: out.nodes,
        queuedMs: out.queuedMs,
        runningMs: out.runningMs,
      };
      status[step.id] = 'succeeded';
    } catch (err) {
      const cancelled = isCancellation(err);
      const failure = failureOf(err);
      results[step.id] = {
        status: cancelled ? 'cancelled' : 'failed',
        attempts: failure.attempts,
        error: { type: failure.type, message: failure.message },
      };
      status[step.id] = cancelled ? 'cancelled' : 'failed';
      if (!cancelled && spec.failurePolicy === 'failFast') {
        stopScheduling = true;
        stepsScope.cancel();
      }
    }
    schedule();
  }

  let running = 0;
  function schedule(): void {
    for (const blocked of blockedSteps(spec.steps, status)) setStatus(blocked.id, 'skipped');
    if (stopScheduling) {
      for (const step of spec.steps) if (status[step.id] === 'pending') setStatus(step.id, 'skipped');
      return;
    }
    for (const step of readySteps(spec.steps, status)) {
      running++;
      void runStep(step).finally(() => running--);
    }
  }

  schedule();
  await condition(() => running === 0 && spec.steps.every((s) => status[s.id] !== 'pending' && status[s.id] !== 'running'));

  const result: PipelineResult = { name: spec.name, project: spec.project, steps: results };
  const failed = spec.steps.filter((s) => status[s.id] === 'failed');
  upsertSearchAttributes({ PantheonStatus: [failed.length > 0 ? 'failed' : 'succeeded'] });
  if (failed.length > 0) {
    const first = results[failed[0]!.id]!;
    throw ApplicationFailure.create({
      type: 'PipelineStepFailed',
      message: `step ${failed.map((s) => `"${s.id}"`).join(', ')} failed: ${first.error?.type}: ${first.error?.message}`,
      nonRetryable: true,
      details: [result],
    });
  }
  return result;
}

