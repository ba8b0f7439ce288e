/**
 * The data-defined pipeline: workflow type `pipeline` on task queue `pantheon`.
 * It validates the JSON spec, plans placement, then runs the DAG: every step
 * whose dependencies have succeeded is started at once, as an activity on its
 * node group's task queue, with the pipeline's priority and fairness key.
 *
 * Besides the messages every pipeline answers (pipeline-messages.ts), this one
 * takes two updates that only make sense for a declared DAG: `setStepResources`
 * for a step that has not started, and `addStep`.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  isCancellation,
  setHandler,
} from '@temporalio/workflow';
import { agentCatalog } from '../agents/catalog';
import {
  blockedSteps,
  dependenciesOf,
  describeIssues,
  findCycle,
  parsePipelineSpec,
  readySteps,
  resolveStepRefs,
  type SpecIssue,
} from './dag';
import {
  addStepInputSchema,
  addStepUpdate,
  setStepResourcesInputSchema,
  setStepResourcesUpdate,
  type StepAdded,
  type StepResourcesChanged,
} from './pipeline-messages';
import { invalidUpdate, parseUpdateInput, PipelineRun } from './pipeline-run';
import type { PipelineResult, StepSpec, StepStatus } from './schemas/pipeline-spec';
import { planStep, planSteps } from './step-plan';

export { fairnessKeyOf } from './pipeline-run';
export { progressQuery } from './pipeline-messages';

export function invalidSpec(issues: SpecIssue[]): ApplicationFailure {
  return ApplicationFailure.create({
    type: 'InvalidPipelineSpec',
    message: `invalid pipeline spec: ${describeIssues(issues)}`,
    nonRetryable: true,
    details: [issues],
  });
}

export async function pipeline(input: unknown): Promise<PipelineResult> {
  const parsed = parsePipelineSpec(input);
  if (!parsed.ok) throw invalidSpec(parsed.issues);
  const spec = parsed.spec;
  const steps: StepSpec[] = [...spec.steps];

  const run = new PipelineRun(
    {
      name: spec.name,
      project: spec.project,
      user: spec.user,
      priority: spec.priority,
      fairnessWeight: spec.fairnessWeight,
    },
    agentCatalog,
  );
  for (const step of steps) run.declare(step.id, step.agent);

  const context = await run.load();
  const plan = planSteps({ steps }, context, agentCatalog);
  if (!plan.ok) throw invalidSpec(plan.issues);
  run.begin();

  // Read from the run's results, which a step's success updates at once: a
  // separate map filled after `await` could lag behind a dependant's scheduling.
  // Only the steps asked for (a step's dependencies, which include every step its inputs reference):
  // reading all of them for each of n steps would make scheduling O(n²).
  const outputs = (ids: readonly string[]): Record<string, unknown> =>
    Object.fromEntries(
      ids.filter((id) => run.statusOf(id) === 'succeeded').map((id) => [id, run.results[id]!.output]),
    );
  const status = (): Record<string, StepStatus> =>
    Object.fromEntries(steps.map((s) => [s.id, run.statusOf(s.id) ?? 'pending']));
  let stopScheduling = false;

  setHandler(
    setStepResourcesUpdate,
    (raw): StepResourcesChanged => {
      const { stepId, resources } = parseUpdateInput(setStepResourcesInputSchema, raw);
      const index = steps.findIndex((s) => s.id === stepId);
      const changed = { ...steps[index]!, resources };
      steps[index] = changed;
      const { group } = planStep(changed, `steps[${index}]`, context, agentCatalog);
      run.declare(stepId);
      return { stepId, resources, group: group! };
    },
    {
      validator: (raw) => {
        const { stepId, resources } = parseUpdateInput(setStepResourcesInputSchema, raw);
        if (run.status !== 'running') throw invalidUpdate(`the pipeline has already ${run.status}`);
        const index = steps.findIndex((s) => s.id === stepId);
        if (index < 0) throw invalidUpdate(`unknown step "${stepId}"`);
        const current = run.statusOf(stepId);
        if (current !== 'pending')
          throw invalidUpdate(
            `step "${stepId}" is ${current}: only a step that has not started can change resources`,
          );
        const planned = planStep({ ...steps[index]!, resources }, 'resources', context, agentCatalog);
        if (planned.issues.length > 0) throw invalidUpdate(describeIssues(planned.issues));
      },
    },
  );

  setHandler(
    addStepUpdate,
    (raw): StepAdded => {
      const { step } = parseUpdateInput(addStepInputSchema, raw);
      steps.push(step);
      run.declare(step.id, step.agent);
      return { stepId: step.id, dependsOn: dependenciesOf(step) };
    },
    {
      validator: (raw) => {
        const { step } = parseUpdateInput(addStepInputSchema, raw);
        if (run.status !== 'running' || stopScheduling)
          throw invalidUpdate(`the pipeline is ${stopScheduling ? 'stopping after a failure' : run.status}`);
        if (steps.some((s) => s.id === step.id))
          throw invalidUpdate(`step.id: step "${step.id}" already exists`);
        const missing = dependenciesOf(step).filter((d) => !steps.some((s) => s.id === d));
        if (missing.length > 0)
          throw invalidUpdate(
            `step.dependsOn: unknown step${missing.length > 1 ? 's' : ''} ${missing.map((m) => `"${m}"`).join(', ')}`,
          );
        if (findCycle([...steps, step]))
          throw invalidUpdate(`step "${step.id}" would close a dependency cycle`);
        const planned = planStep(step, 'step', context, agentCatalog);
        if (planned.issues.length > 0) throw invalidUpdate(describeIssues(planned.issues));
      },
    },
  );

  let running = 0;
  async function runStep(step: StepSpec): Promise<void> {
    try {
      const available = outputs(dependenciesOf(step));
      const inputs = {
        args: resolveStepRefs(step.args, available) as unknown[],
        kwargs: resolveStepRefs(step.kwargs, available) as Record<string, unknown>,
      };
      await run.runStep(step, inputs);
    } finally {
      running--;
    }
  }

  function schedule(): void {
    const current = status();
    if (spec.failurePolicy === 'failFast' && !stopScheduling && Object.values(current).includes('failed')) {
      // failFast: the first failure stops everything still running; the rest is skipped.
      stopScheduling = true;
      run.stepsScope.cancel();
    }
    for (const blocked of blockedSteps(steps, current)) run.setStatus(blocked.id, 'skipped');
    if (stopScheduling) {
      for (const step of steps) if (run.statusOf(step.id) === 'pending') run.setStatus(step.id, 'skipped');
      return;
    }
    // `current` is still right for this: a step skipped just above was blocked, so it was never ready.
    for (const step of readySteps(steps, current)) {
      running++;
      // Not pending any more from here on, so the next schedule() does not start it twice.
      run.setStatus(step.id, 'queued');
      void runStep(step);
    }
  }

  try {
    for (;;) {
      schedule();
      if (running === 0 && run.allFinal) break;
      const seen = run.version;
      await condition(() => run.version !== seen || (running === 0 && run.allFinal));
    }
  } catch (err) {
    if (isCancellation(err)) {
      run.finish('cancelled');
      throw err;
    }
    throw err;
  }

  const failed = steps.filter((s) => run.statusOf(s.id) === 'failed');
  const result = run.finish(failed.length > 0 ? 'failed' : 'succeeded');
  // Updates accepted before the end (a priority change waiting on its activity) finish first.
  await condition(allHandlersFinished);
  if (failed.length > 0) {
    const first = result.steps[failed[0]!.id]!;
    throw ApplicationFailure.create({
      type: 'PipelineStepFailed',
      message: `step ${failed.map((s) => `"${s.id}"`).join(', ')} failed: ${first.error?.type}: ${first.error?.message}`,
      nonRetryable: true,
      details: [result],
    });
  }
  return result;
}
