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
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import type { ControlActivities } from '../activities';
import {
  blockedSteps,
  describeIssues,
  parsePipelineSpec,
  readySteps,
  resolveStepRefs,
  type SpecIssue,
} from './dag';
import type { PipelineResult, PipelineSpec, StepResult, StepSpec, StepStatus } from './schemas/pipeline-spec';
import { executeStep, failureOf } from './step-execution';
import { planSteps } from './step-plan';

export const progressQuery = defineQuery<PipelineResult>('progress');

const { loadPlacementContext } = proxyLocalActivities<ControlActivities>({ startToCloseTimeout: '30s' });

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

  const priority = {
    priorityKey: spec.priority,
    fairnessKey: fairnessKeyOf(spec),
    fairnessWeight: spec.fairnessWeight,
  };
  const setStatus = (id: string, next: StepStatus) => {
    status[id] = next;
    results[id] = { ...results[id], status: next, attempts: results[id]?.attempts ?? 0 };
  };
  let stopScheduling = false;
  const stepsScope = new CancellationScope();

  async function runStep(step: StepSpec): Promise<void> {
    setStatus(step.id, 'running');
    try {
      const inputs = {
        args: resolveStepRefs(step.args, outputs) as unknown[],
        kwargs: resolveStepRefs(step.kwargs, outputs) as Record<string, unknown>,
      };
      const placement = { group: groups[step.id]!, priority };
      results[step.id] = await stepsScope.run(() => executeStep(step, inputs, placement));
      outputs[step.id] = results[step.id]!.output;
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
  await condition(
    () => running === 0 && spec.steps.every((s) => status[s.id] !== 'pending' && status[s.id] !== 'running'),
  );

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
