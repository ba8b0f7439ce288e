/**
 * The data-defined pipeline: workflow type `pipeline` on task queue `pantheon`.
 * It validates the JSON spec, plans placement, then runs the DAG: every step
 * whose dependencies have succeeded is started at once, as an activity on its
 * node group's task queue, with the pipeline's priority and fairness key.
 *
 * Besides the messages every pipeline answers (core/messages/pipeline.ts), this
 * one takes two updates that only make sense for a declared DAG:
 * `setStepResources` for a step that has not started, and `addStep`. All of
 * them are wired in one block at the top of the workflow; the logic is in
 * `PipelineRun` (every pipeline) and `DagPipeline` (this one).
 */
import { type Issue, describeIssues } from '../../core/issues';
import {
  allHandlersFinished,
  ApplicationFailure,
  condition,
  continueAsNew,
  isCancellation,
  patched,
  setHandler,
} from '@temporalio/workflow';
import { issuesOf } from '../../core/issues';
import {
  compactSteps,
  CONTINUATION_LIMITS,
  continuationInputSchema,
  isContinuationInput,
  shouldContinue,
  type CarriedState,
  type ContinuationInput,
} from '../../core/continuation';
import {
  dependenciesOf,
  FINISHED_BAD,
  parsePipelineSpec,
  resolveStepRefs,
  stepInputRefs,
} from '../../core/dag';
import { mapCallOf } from '../../core/schemas/map-step';
import type { StepInputs } from './agent-memory';
import type { AgentCatalog } from '../../core/agents';
import {
  addStepInputSchema,
  addStepUpdate,
  cancelStepUpdate,
  progressQuery,
  setPriorityUpdate,
  setStepResourcesInputSchema,
  setStepResourcesUpdate,
  stepAttemptStartedSignal,
  type StepAdded,
  type StepResourcesChanged,
} from '../../core/messages/pipeline';
import { invalidUpdate, parseUpdateInput, PipelineRun } from './run';
import { jsonBytes } from '../../core/history-budget';
import {
  FINAL_STEP_STATUSES,
  SPEC_LIMITS,
  type PipelineSpec,
  type PipelineResult,
  type StepSpec,
  type StepStatus,
} from '../../core/schemas/pipeline-spec';
import {
  addStepIssues,
  planStep,
  planSteps,
  stepResourcesIssues,
  type PlanContext,
} from '../../core/step-plan';

/** Marks runs that may continue as new; runs started before it keep every step in one history. */
export const CONTINUE_AS_NEW_PATCH = 'continue-as-new';

export function invalidSpec(issues: Issue[]): ApplicationFailure {
  return ApplicationFailure.create({
    type: 'InvalidPipelineSpec',
    message: `invalid pipeline spec: ${describeIssues(issues)}`,
    nonRetryable: true,
    details: [issues],
  });
}

/** The `pipeline` workflow, for the agents a deployment knows (what a spec's `agent` field may name). */
export function pipelineWorkflow(agents: AgentCatalog): (input: unknown) => Promise<PipelineResult> {
  const pipeline = async (input: unknown): Promise<PipelineResult> => {
    // A continued run (core/continuation.ts) is given the spec and what the runs before it did.
    let carried: CarriedState | undefined;
    let rawSpec = input;
    if (isContinuationInput(input)) {
      const continued = continuationInputSchema.safeParse(input);
      if (!continued.success) throw invalidSpec(issuesOf(continued.error));
      carried = continued.data.continuation;
      rawSpec = continued.data.spec;
    }
    const parsed = parsePipelineSpec(rawSpec);
    if (!parsed.ok) throw invalidSpec(parsed.issues);
    const spec = parsed.spec;
    const run = new PipelineRun(
      {
        name: spec.name,
        project: spec.project,
        user: spec.user,
        priority: carried?.priority ?? spec.priority,
        fairnessWeight: spec.fairnessWeight,
      },
      agents,
    );
    // Pipelines started before the window schedule every ready step at once, and replay that way.
    const window = patched('bounded-step-window')
      ? (spec.maxInFlightSteps ?? SPEC_LIMITS.maxInFlightSteps)
      : Number.POSITIVE_INFINITY;
    // Pipelines started before continue-as-new run in one history, and replay that way.
    const stepsPerRun = patched(CONTINUE_AS_NEW_PATCH)
      ? (spec.continueAsNewAfterSteps ?? CONTINUATION_LIMITS.defaultStepsPerRun)
      : 0;
    const dag = new DagPipeline(spec, window, stepsPerRun, run, agents, carried);

    // Every message this workflow answers (core/messages/pipeline.ts), in one place. The DAG's own
    // updates are wired once the node groups are known, since their validators plan against them;
    // one sent before that waits in Temporal until then.
    setHandler(progressQuery, () => run.snapshot());
    setHandler(stepAttemptStartedSignal, (raw) => run.records.onAttemptStarted(raw));
    setHandler(setPriorityUpdate, (raw) => run.setPriority(raw), {
      validator: (raw) => run.validateSetPriority(raw),
    });
    setHandler(cancelStepUpdate, (raw) => run.cancelStep(raw), {
      validator: (raw) => run.validateCancelStep(raw),
    });
    await dag.plan(jsonBytes(input));
    setHandler(setStepResourcesUpdate, (raw) => dag.setStepResources(raw), {
      validator: (raw) => dag.validateSetStepResources(raw),
    });
    setHandler(addStepUpdate, (raw) => dag.addStep(raw), { validator: (raw) => dag.validateAddStep(raw) });

    return dag.runToEnd();
  };
  Object.defineProperty(pipeline, 'name', { value: 'pipeline' });
  return pipeline;
}

/** An object keyed by step ids with no prototype: a step called `constructor` is just a step. */
function nullPrototype<T>(entries: Iterable<readonly [string, T]>): Record<string, T> {
  return Object.assign(Object.create(null) as Record<string, T>, Object.fromEntries(entries));
}

/** A declared DAG of steps: planning, the live updates that change it, and the scheduling loop. */
class DagPipeline {
  private readonly steps: StepSpec[];
  private readonly failurePolicy: 'failFast' | 'continue';
  private context: PlanContext = { nodeGroups: [], allowedTaskPackages: [] };
  private stopScheduling = false;
  private running = 0;
  /** Steps whose activity ended in this run: what decides when it continues as new. */
  private stepsEnded = 0;
  /** No step starts any more: the run continues as new once the running ones have ended. */
  private draining = false;
  /** When a continuation did not fit one payload: try again once this many steps have ended. */
  private nextContinueCheck = 0;
  /**
   * Each step's dependencies, worked out once per step spec (stepInputRefs walks its arguments):
   * the scheduler asks for them on every wake-up, and a wide pipeline wakes once per step that ends.
   */
  private readonly dependencies = new WeakMap<StepSpec, readonly string[]>();
  /**
   * Every step before this index has left `pending`, and a step never returns to it: the search for
   * ready steps starts here rather than at the first step.
   */
  private firstPending = 0;
  /** What the last search for blocked steps saw: it is searched again only when one of them moved. */
  private blockedSearch = { finishedBad: -1, steps: -1 };

  constructor(
    private readonly spec: PipelineSpec,
    /** Steps in flight at once at most (Temporal allows 2,000 pending activities per workflow). */
    private readonly window: number,
    /** Steps this run ends before it continues as new (0: it never does). */
    private readonly stepsPerRun: number,
    private readonly run: PipelineRun,
    private readonly agents: AgentCatalog,
    private readonly carried: CarriedState | undefined,
  ) {
    this.steps = [...spec.steps];
    this.failurePolicy = spec.failurePolicy;
    for (const step of this.steps) run.records.declare(step.id, step.agent);
    if (carried) run.restore(carried);
  }

  validateSetStepResources(raw: unknown): void {
    const checked = stepResourcesIssues(raw, this.steps, this.context, this.agents);
    if (checked.issues.length > 0) throw invalidUpdate(describeIssues(checked.issues));
    if (this.run.status !== 'running') throw invalidUpdate(`the pipeline has already ${this.run.status}`);
    const current = this.run.records.statusOf(checked.stepId!);
    if (current !== 'pending')
      throw invalidUpdate(
        `step "${checked.stepId}" is ${current}: only a step that has not started can change resources`,
      );
  }

  setStepResources(raw: unknown): StepResourcesChanged {
    const { stepId, resources } = parseUpdateInput(setStepResourcesInputSchema, raw);
    const index = this.steps.findIndex((s) => s.id === stepId);
    const changed = { ...this.steps[index]!, resources };
    this.steps[index] = changed;
    const { group } = planStep(changed, `steps[${index}]`, this.context, this.agents);
    this.run.records.declare(stepId);
    return { stepId, resources, group: group! };
  }

  validateAddStep(raw: unknown): void {
    if (this.run.status !== 'running' || this.stopScheduling)
      throw invalidUpdate(
        `the pipeline is ${this.stopScheduling ? 'stopping after a failure' : this.run.status}`,
      );
    const checked = addStepIssues(raw, this.steps, this.context, this.agents);
    if (checked.issues.length > 0) throw invalidUpdate(describeIssues(checked.issues));
    // An earlier run of a continued pipeline kept only the outputs its unfinished steps read.
    const { step } = parseUpdateInput(addStepInputSchema, raw);
    const gone = [...new Set(stepInputRefs(step).map((r) => r.step))].filter((id) =>
      this.run.outputLeftBehind(id),
    );
    if (gone.length > 0)
      throw invalidUpdate(
        `step: the output of ${gone.map((id) => `"${id}"`).join(', ')} stayed with an earlier run of this ` +
          'continued pipeline (only outputs that unfinished steps read are carried)',
      );
  }

  addStep(raw: unknown): StepAdded {
    const { step } = parseUpdateInput(addStepInputSchema, raw);
    this.run.recordUpdate(raw);
    this.steps.push(step);
    this.run.records.declare(step.id, step.agent);
    return { stepId: step.id, dependsOn: dependenciesOf(step) };
  }

  /**
   * Reads the node groups (once, recorded in history), refuses a spec that cannot be placed, starts;
   * `inputBytes` is what the spec takes in history.
   */
  async plan(inputBytes: number): Promise<void> {
    this.context = await this.run.load();
    const plan = planSteps({ steps: this.steps }, this.context, this.agents);
    if (!plan.ok) throw invalidSpec(plan.issues);
    this.run.begin(inputBytes);
  }

  /** Starts every step whose dependencies have succeeded, until every step is final (or the run continues as new). */
  async runToEnd(): Promise<PipelineResult> {
    const { run, steps } = this;
    try {
      for (;;) {
        if (this.stepsPerRun > 0 && !this.draining && this.stepsEnded >= this.nextContinueCheck) {
          const history = run.historyUse();
          this.draining = shouldContinue({
            stepsEndedThisRun: this.stepsEnded,
            stepsPerRun: this.stepsPerRun,
            historyBytes: history.bytes,
            historyBudgetBytes: history.budgetBytes,
            allFinal: run.records.allFinal,
          });
        }
        this.schedule();
        if (this.running === 0 && run.records.allFinal) break;
        if (this.draining && this.running === 0) await this.continueAsNewIfItFits();
        const seen = run.records.version;
        await condition(() => run.records.version !== seen || (this.running === 0 && run.records.allFinal));
      }
    } catch (err) {
      if (isCancellation(err)) {
        run.finish('cancelled');
        throw err;
      }
      throw err;
    }

    const failed = steps.filter((s) => run.records.statusOf(s.id) === 'failed');
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

  /**
   * The outputs of the steps asked for (a step's dependencies, which include every step its inputs
   * reference), read from the run's results, which a step's success updates at once: a separate map
   * filled after `await` could lag behind a dependant's scheduling. Reading all of them for each of
   * n steps would make scheduling O(n²).
   */
  private outputs(ids: readonly string[]): Record<string, unknown> {
    return nullPrototype(
      ids
        .filter((id) => this.run.records.statusOf(id) === 'succeeded')
        .map((id) => [id, this.run.records.results[id]!.output]),
    );
  }

  private dependenciesOf(step: StepSpec): readonly string[] {
    let found = this.dependencies.get(step);
    if (!found) this.dependencies.set(step, (found = dependenciesOf(step)));
    return found;
  }

  private statusOf(stepId: string): StepStatus {
    return this.run.records.statusOf(stepId) ?? 'pending';
  }

  /**
   * Continues as a new run with the spec (steps added by updates included, resources as changed) and
   * what this run carries; when that would not fit one payload, runs on and tries again later.
   */
  private async continueAsNewIfItFits(): Promise<void> {
    // Updates accepted before now (an addStep, a priority change) finish first and are carried.
    await condition(allHandlersFinished);
    const unfinished = this.steps.filter((s) => !FINAL_STEP_STATUSES.has(this.run.records.statusOf(s.id)!));
    // Only outputs a `$step` reference reads are carried; a plain `dependsOn` needs the status alone.
    const needed = new Set(unfinished.flatMap((s) => stepInputRefs(s).map((r) => r.step)));
    const next: ContinuationInput = {
      spec: { ...this.spec, steps: compactSteps(this.steps), priority: this.run.snapshotPriority() },
      continuation: this.run.carry(needed, this.carried?.runs ?? 0),
    };
    if (jsonBytes(next) > CONTINUATION_LIMITS.maxContinuationBytes) {
      this.draining = false;
      this.nextContinueCheck = this.stepsEnded + CONTINUATION_LIMITS.minStepsPerRun;
      return;
    }
    await continueAsNew<(input: unknown) => Promise<PipelineResult>>(next);
  }

  private async runStep(step: StepSpec): Promise<void> {
    try {
      const available = this.outputs(this.dependenciesOf(step));
      const inputs: StepInputs = {
        args: resolveStepRefs(step.args, available) as unknown[],
        kwargs: resolveStepRefs(step.kwargs, available) as Record<string, unknown>,
        // Only a map step's activity carries `map`: other steps' inputs stay as they were recorded.
        ...(step.map && { map: mapCallOf(step, resolveStepRefs(step.map.over, available)) }),
      };
      await this.run.runStep(step, inputs);
    } finally {
      this.running--;
      this.stepsEnded++;
    }
  }

  /**
   * Skips what can no longer run, then starts ready steps in spec order while the window has room.
   * Called on every wake-up, so it does no pass over all steps unless something asks for one: the
   * same decisions as core/dag.ts's blockedSteps and readySteps over all of them (which the
   * workflow made before; replays of its histories check they still agree), at a cost that does not
   * grow with the steps already done.
   */
  private schedule(): void {
    const { run, steps } = this;
    const records = run.records;
    if (this.failurePolicy === 'failFast' && !this.stopScheduling && records.countOf('failed') > 0) {
      // failFast: the first failure stops everything still running; the rest is skipped.
      this.stopScheduling = true;
      run.stepsScope.cancel();
    }
    // A pending step is blocked once a dependency failed, was skipped or cancelled: searched again only
    // when such a step appeared (or a step was added) since the last search. Each search skips one
    // level of dependants; the skips wake the loop for the next.
    const finishedBad = records.countOf('failed') + records.countOf('skipped') + records.countOf('cancelled');
    if (finishedBad !== this.blockedSearch.finishedBad || steps.length !== this.blockedSearch.steps) {
      const blocked = steps.filter(
        (s) =>
          this.statusOf(s.id) === 'pending' &&
          this.dependenciesOf(s).some((d) => FINISHED_BAD.has(this.statusOf(d))),
      );
      this.blockedSearch = { finishedBad, steps: steps.length };
      for (const step of blocked) records.setStatus(step.id, 'skipped');
    }
    if (this.stopScheduling) {
      if (records.countOf('pending') > 0)
        for (const step of steps)
          if (this.statusOf(step.id) === 'pending') records.setStatus(step.id, 'skipped');
      return;
    }
    if (this.draining) return;
    // Beyond the window, ready steps stay pending, in spec order, until a running one ends.
    while (this.firstPending < steps.length && this.statusOf(steps[this.firstPending]!.id) !== 'pending')
      this.firstPending++;
    for (let i = this.firstPending; i < steps.length && this.running < this.window; i++) {
      const step = steps[i]!;
      if (this.statusOf(step.id) !== 'pending') continue;
      if (!this.dependenciesOf(step).every((d) => this.statusOf(d) === 'succeeded')) continue;
      this.running++;
      // Not pending any more from here on, so the next schedule() does not start it twice.
      records.setStatus(step.id, 'queued');
      void this.runStep(step);
    }
  }
}
