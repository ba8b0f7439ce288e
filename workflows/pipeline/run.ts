/**
 * One running pipeline, seen from inside its workflow: the engine shared by
 * the JSON `pipeline` workflow and every code-defined pipeline.
 *
 * It runs steps (a task, or an agent with its fallbacks), keeps every step's
 * state for the `progress` query, answers `setPriority` and `cancelStep`,
 * keeps the search attributes and the Web UI's current details up to date,
 * learns from and reports to the agents' performance records, and builds the
 * usage report. Workflow code: deterministic, no I/O.
 */
import {
  ApplicationFailure,
  CancellationScope,
  condition,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setCurrentDetails,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { AgentCatalog, AgentDefinition } from '../../core/agents';
import type { ControlActivities, PipelineControlActivities } from '../../activities';
import { AGENT_HOST_TASK, agentHostKwargs, agentHostOutputSchema } from '../../core/agent-host';
import { recallForAgentStep, retainAfterAgentStep, type StepInputs } from './agent-memory';
import { allocateStepResources, type Allocation } from '../../core/agent-allocation';
import {
  cancelStepInputSchema,
  setPriorityInputSchema,
  stepActivityId,
  type PriorityChanged,
  type StepCancelled,
} from '../../core/messages/pipeline';
import { chooseNodeGroup } from '../../core/placement';
import {
  agentStepRecordedBytes,
  HISTORY_LIMITS,
  jsonBytes,
  runBaseBytes,
  stepReservationBytes,
  taskStepRecordedBytes,
  type StepOutcome,
} from '../../core/history-budget';
import { HISTORY_BUDGET_PATCH, HistoryLedger } from './history-ledger';

/** Marks runs whose steps wait for a free place in the window of steps in flight (code-defined bodies). */
export const STEP_WINDOW_PATCH = 'run-step-window';
import {
  carryState,
  restoredRecords,
  withCarriedUsage,
  type CarriedState,
  type UsageTotals,
} from '../../core/continuation';
import {
  boundedResult,
  FINAL_STEP_STATUSES,
  MAX_RESULT_BYTES,
  SPEC_LIMITS,
  type AgentPerformanceSummary,
  type PipelineIdentity,
  type PipelineResult,
  type PipelineStatus,
  type StepResult,
  type StepSpec,
  type UsageReport,
} from '../../core/schemas/pipeline-spec';
import { pipelineDetails } from './details';
import { StepRecords } from './step-records';
import { executeStep, failureOf, type StepPriority } from './step-execution';
import { usageReport } from '../../core/usage-report';
import type { PlanContext } from '../../core/step-plan';
import { describeZodError } from '../../core/issues';

const { loadPlacementContext } = proxyLocalActivities<ControlActivities>({ startToCloseTimeout: '30s' });
const { readAgentPerformance, recordAgentRun } = proxyLocalActivities<PipelineControlActivities>({
  startToCloseTimeout: '15s',
  retry: { maximumAttempts: 3 },
});
const { reprioritizeSteps } = proxyActivities<PipelineControlActivities>({
  startToCloseTimeout: '60s',
  retry: { maximumAttempts: 5 },
  // It exists to let urgent work overtake: it must not wait behind ordinary work itself.
  priority: { priorityKey: 1 },
  summary: 'change the priority of queued steps',
});

/** Thrown into the workflow for an update the validator refuses; the pipeline is left as it was. */
export function invalidUpdate(message: string): ApplicationFailure {
  return ApplicationFailure.create({ type: 'InvalidUpdate', message, nonRetryable: true });
}

/** Parses an update's argument with zod; throws naming the offending field. */
export function parseUpdateInput<T>(
  schema: {
    safeParse(
      v: unknown,
    ):
      | { success: true; data: T }
      | { success: false; error: { issues: { path: PropertyKey[]; message: string }[] } };
  },
  raw: unknown,
): T {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw invalidUpdate(describeZodError(parsed.error));
  return parsed.data;
}

export function fairnessKeyOf(identity: { project: string; user?: string }): string {
  return identity.user ? `${identity.project}/${identity.user}` : identity.project;
}

export class PipelineRun {
  /** Every step's state: what `progress` shows and the result returns. */
  readonly records = new StepRecords(() => this.renderDetailsSoon());
  status: PipelineStatus = 'running';
  output: unknown;
  private detailsPending = false;
  /** Root of every step's cancellation scope: cancelling it stops all running steps (failFast). */
  readonly stepsScope = new CancellationScope();

  private priorityKey: number;
  private context: PlanContext = { nodeGroups: [], allowedTaskPackages: [] };
  private readonly stepScopes = new Map<string, CancellationScope>();
  private readonly observed = new Map<string, Promise<AgentPerformanceSummary | null>>();
  private readonly observedSnapshot: Record<string, AgentPerformanceSummary | null> = Object.create(null);
  /** What this run has put into its history, and what its steps in flight may still add (begin() opens it). */
  private ledger = new HistoryLedger(false, 0);
  /**
   * Steps running at once, and the most that may: a code-defined body may start any number (a fan-out),
   * and Temporal allows 2,000 pending activities per workflow. A JSON pipeline's own window is lower.
   */
  private stepsInFlight = 0;
  private maxStepsInFlight: number = SPEC_LIMITS.maxInFlightSteps;
  /** Steps earlier runs of a continued pipeline finished, and the usage they reported. */
  private readonly carriedSteps = new Set<string>();
  private carriedUsage: UsageTotals | undefined;

  /** The workflow wires its message handlers to this run's methods (`onAttemptStarted`, `setPriority`, …). */
  constructor(
    readonly identity: PipelineIdentity,
    readonly agents: AgentCatalog,
  ) {
    this.priorityKey = identity.priority;
  }

  /** Reads the node groups and allowed packages (once, recorded in history) and marks the pipeline running. */
  async load(): Promise<PlanContext> {
    this.context = await loadPlacementContext();
    return this.context;
  }

  /** Marks the pipeline running; `inputBytes` is what its start input takes in history. */
  begin(inputBytes: number): void {
    // Runs started before the history budget replay without it: no step waits for room or is refused for size.
    this.ledger = new HistoryLedger(
      patched(HISTORY_BUDGET_PATCH),
      runBaseBytes(inputBytes, MAX_RESULT_BYTES),
    );
    upsertSearchAttributes({
      PantheonProject: [this.identity.project],
      PantheonPipeline: [this.identity.name],
      PantheonStatus: ['running'],
    });
    this.records.touch();
  }

  get priority(): StepPriority {
    return {
      priorityKey: this.priorityKey,
      fairnessKey: fairnessKeyOf(this.identity),
      ...(this.identity.fairnessWeight !== undefined && { fairnessWeight: this.identity.fairnessWeight }),
    };
  }

  get nodeGroups() {
    return this.context.nodeGroups;
  }

  /** An update's argument went into history (and its outcome will): the budget counts it. */
  recordUpdate(raw: unknown): void {
    this.ledger.record(jsonBytes(raw) + HISTORY_LIMITS.activityOverheadBytes);
  }

  /**
   * Runs one step to its end; never throws for the step's own failure or
   * cancellation — the result says what happened.
   */
  async runStep(step: StepSpec, inputs: StepInputs): Promise<StepResult> {
    const result = this.records.declare(step.id, step.agent);
    if (FINAL_STEP_STATUSES.has(result.status)) return result;
    // Waits only when the window is full, which no run before the window reached: they replay as they ran.
    if (this.stepsInFlight >= this.maxStepsInFlight && patched(STEP_WINDOW_PATCH)) {
      // Every waiter wakes when a place frees up; the first to resume takes it, the others wait again.
      while (this.stepsInFlight >= this.maxStepsInFlight)
        await condition(() => this.stepsInFlight < this.maxStepsInFlight);
      if (FINAL_STEP_STATUSES.has(result.status)) return result; // cancelled while it waited
    }
    this.stepsInFlight++;
    try {
      return await this.runStepNow(step, inputs);
    } finally {
      this.stepsInFlight--;
    }
  }

  /** Sets the most steps in flight at once (a code-defined pipeline's `maxInFlightSteps`). */
  limitStepsInFlight(max: number): void {
    this.maxStepsInFlight = max;
  }

  private async runStepNow(step: StepSpec, inputs: StepInputs): Promise<StepResult> {
    // A child of stepsScope (cancelling that stops every step), made without entering stepsScope first:
    // each promise a step creates costs the SDK a stack capture, and a pipeline creates thousands.
    const scope = new CancellationScope({ cancellable: true, parent: this.stepsScope });
    this.stepScopes.set(step.id, scope);
    try {
      return await scope.run(() =>
        step.agent !== undefined ? this.runAgentStep(step, inputs) : this.runTaskStep(step, inputs),
      );
    } finally {
      this.stepScopes.delete(step.id);
      this.records.touch();
    }
  }

  private async runTaskStep(step: StepSpec, inputs: StepInputs): Promise<StepResult> {
    const allocation = allocateStepResources({
      stepResources: step.resources,
      observed: null,
      nodeGroups: this.context.nodeGroups,
    });
    const activityId = stepActivityId(step.id);
    const kind = step.job !== undefined ? 'job' : 'task';
    // What the step's activity is given: its resolved inputs, or the job's description.
    const inputBytes = jsonBytes(kind === 'job' ? step.job : inputs);
    try {
      const group = this.groupFor(step.id, allocation);
      const room = await this.ledger.reserve(step.id, inputBytes, stepReservationBytes(kind, inputBytes));
      let outcome: StepOutcome = { succeeded: false };
      try {
        this.records.markQueued(step.id, activityId, allocation);
        const out = await executeStep(step, inputs, { group, priority: this.priority, activityId });
        outcome = { succeeded: true, output: out.output };
        return this.records.succeed(step.id, activityId, out);
      } finally {
        this.ledger.settle(room, taskStepRecordedBytes(kind, inputBytes, outcome));
      }
    } catch (err) {
      return this.records.failOrCancel(step.id, activityId, err);
    }
  }

  private async runAgentStep(step: StepSpec, inputs: StepInputs): Promise<StepResult> {
    const chain = this.agents.fallbackChain(step.agent ?? '');
    if (chain.length === 0) {
      this.records.setStatus(step.id, 'failed');
      this.records.results[step.id]!.error = {
        type: 'UnknownAgent',
        message: `unknown agent "${step.agent}"`,
      };
      return this.records.results[step.id]!;
    }
    let activityId = stepActivityId(step.id);
    try {
      // An agent that declares its arguments is given only what fits them (its fallbacks take the same).
      const declaredArgs = chain[0]!.args?.safeParse(inputs.args);
      if (declaredArgs && !declaredArgs.success)
        throw ApplicationFailure.nonRetryable(
          `agent ${chain[0]!.name} takes other arguments: ${describeZodError(declaredArgs.error, 'args')}`,
          'AgentInputInvalid',
        );
      for (const [index, agent] of chain.entries()) {
        const fallbackAgent = index === 0 ? undefined : agent.name;
        activityId = stepActivityId(step.id, fallbackAgent);
        const observed = await this.observedPerformance(agent.name);
        const allocation = allocateStepResources({
          stepResources: step.resources,
          agentResources: agent.resources,
          observed,
          nodeGroups: this.context.nodeGroups,
        });
        const memoryContext = {
          project: this.identity.project,
          pipeline: this.identity.name,
          stepId: step.id,
          agent,
        };
        const inputBytes = jsonBytes(inputs);
        const room = await this.ledger.reserve(
          step.id,
          inputBytes,
          stepReservationBytes('agent', inputBytes),
        );
        let memoryBytes = 0;
        let hostInputBytes = inputBytes;
        let outcome: StepOutcome = { succeeded: false };
        try {
          const memory = await recallForAgentStep(memoryContext, inputs);
          memoryBytes = jsonBytes(memory);
          const group = this.groupFor(step.id, allocation);
          this.records.markQueued(step.id, activityId, allocation, agent.name);
          if (observed?.meanDurationMs != null)
            this.records.results[step.id]!.expectedRunningMs = observed.meanDurationMs;
          const hostStep: StepSpec = {
            // A fallback is a different Ray step: the dispatcher must not attach it to the primary's failure.
            id: fallbackAgent === undefined ? step.id : `${step.id}~${fallbackAgent}`,
            task: AGENT_HOST_TASK,
            args: [],
            kwargs: agentHostKwargs(agent.name, agent.task, inputs, memory),
            dependsOn: [],
            resources: allocation.resources,
            retry: step.retry ?? agent.retry,
            timeoutSeconds: step.timeoutSeconds ?? agent.timeoutSeconds,
            nonRetryableErrors: step.nonRetryableErrors,
          };
          try {
            hostInputBytes = jsonBytes(hostStep.kwargs);
            const out = await executeStep(
              hostStep,
              { args: [], kwargs: hostStep.kwargs },
              {
                group,
                priority: this.priority,
                activityId,
                summary: `${step.id}: agent ${agent.name}${fallbackAgent ? ' (fallback)' : ''}`,
              },
            );
            outcome = { succeeded: true, output: out.output };
            const host = agentHostOutputSchema.safeParse(out.output);
            if (!host.success)
              throw ApplicationFailure.nonRetryable(
                `agent host returned an unexpected shape: ${describeZodError(host.error, 'output')}`,
                'AgentHostOutputInvalid',
              );
            const declaredOutput = agent.output?.safeParse(host.data.output);
            if (declaredOutput && !declaredOutput.success)
              throw ApplicationFailure.nonRetryable(
                `agent ${agent.name} returned an output its declaration does not allow: ${describeZodError(declaredOutput.error, 'output')}`,
                'AgentOutputInvalid',
              );
            // Remembered before the step counts as done: a malformed `memories` fails the agent like bad output.
            await retainAfterAgentStep(memoryContext, host.data.output, out.attempts);
            const result = this.records.succeed(step.id, activityId, { ...out, output: host.data.output });
            result.cpuSeconds = host.data.usage.cpuSeconds;
            result.peakMemoryMb = host.data.usage.peakMemoryMb;
            await this.report(agent, step.id, result);
            return result;
          } catch (err) {
            if (isCancellation(err)) throw err;
            const failure = failureOf(err);
            const attempts = Math.max(failure.attempts, this.records.results[step.id]!.attempts);
            await this.report(agent, step.id, { status: 'failed', attempts });
            const next = chain[index + 1];
            if (next === undefined) throw err;
            log.warn('agent gave up; its fallback takes over', {
              stepId: step.id,
              agent: agent.name,
              fallback: next.name,
              error: failure.message,
            });
            this.records.inFlight.delete(activityId);
            // From here on the step's attempts are the fallback's own; the primary's are in fallbackFrom.
            this.records.results[step.id]!.attempts = 0;
            this.records.results[step.id]!.fallbackFrom = {
              agent: agent.name,
              error: { type: failure.type, message: failure.message },
              attempts,
            };
          }
        } finally {
          this.ledger.settle(
            room,
            agentStepRecordedBytes({ inputBytes, memoryBytes, hostInputBytes, outcome }),
          );
        }
      }
      throw ApplicationFailure.nonRetryable('no agent left to run the step', 'NoAgentLeft');
    } catch (err) {
      return this.records.failOrCancel(step.id, activityId, err);
    }
  }

  private groupFor(stepId: string, allocation: Allocation): string {
    const choice = chooseNodeGroup(allocation.resources, this.context.nodeGroups);
    if ('infeasible' in choice)
      throw ApplicationFailure.nonRetryable(`step "${stepId}": ${choice.infeasible}`, 'InfeasibleResources');
    return choice.group;
  }

  /** The agent's record, read once per pipeline run (a failed read means "no record", not a failed step). */
  private observedPerformance(agent: string): Promise<AgentPerformanceSummary | null> {
    let cached = this.observed.get(agent);
    if (!cached) {
      cached = readAgentPerformance(agent).catch((err: unknown) => {
        if (isCancellation(err)) throw err;
        log.warn('could not read agent performance; using defaults', { agent, error: String(err) });
        return null;
      });
      cached.then((summary) => (this.observedSnapshot[agent] = summary)).catch(() => undefined);
      this.observed.set(agent, cached);
    }
    return cached;
  }

  private async report(agent: AgentDefinition, stepId: string, result: Partial<StepResult>): Promise<void> {
    try {
      await recordAgentRun({
        agent: agent.name,
        key: `${workflowInfo().workflowId}/${stepId}`,
        succeeded: result.status === 'succeeded',
        attempts: result.attempts ?? 0,
        ...(result.runningMs !== undefined && { runningMs: result.runningMs }),
        ...(result.peakMemoryMb !== undefined && { peakMemoryMb: result.peakMemoryMb }),
        ...(result.cpuSeconds !== undefined && { cpuSeconds: result.cpuSeconds }),
        observedAtMs: Date.now(),
      });
    } catch (err) {
      if (isCancellation(err)) throw err;
      // Performance records inform allocation; losing one must not fail a step.
      log.warn('could not record agent run', { agent: agent.name, stepId, error: String(err) });
    }
  }

  private assertRunning(): void {
    if (this.status !== 'running') throw invalidUpdate(`the pipeline has already ${this.status}`);
  }

  private assertCancellable(stepId: string): void {
    const status = this.records.results[stepId]?.status;
    if (status === undefined)
      throw invalidUpdate(`unknown step "${stepId}" (steps: ${this.records.order.join(', ') || 'none yet'})`);
    if (FINAL_STEP_STATUSES.has(status)) throw invalidUpdate(`step "${stepId}" has already ${status}`);
  }

  validateSetPriority(raw: unknown): void {
    parseUpdateInput(setPriorityInputSchema, raw);
    this.assertRunning();
  }

  /** The `setPriority` update: every step not yet running gets the new priority. */
  async setPriority(raw: unknown): Promise<PriorityChanged> {
    const { priority } = parseUpdateInput(setPriorityInputSchema, raw);
    this.priorityKey = priority;
    const activityIds = [...this.records.inFlight];
    const changed =
      activityIds.length === 0
        ? []
        : await reprioritizeSteps({
            workflowId: workflowInfo().workflowId,
            runId: workflowInfo().runId,
            activityIds,
            priorityKey: priority,
          });
    this.records.touch();
    return { priority, reprioritizedSteps: changed.map((id) => this.records.stepOfActivity.get(id) ?? id) };
  }

  validateCancelStep(raw: unknown): void {
    const { stepId } = parseUpdateInput(cancelStepInputSchema, raw);
    this.assertRunning();
    this.assertCancellable(stepId);
  }

  /** The `cancelStep` update: the step stops; its dependants are skipped. */
  cancelStep(raw: unknown): StepCancelled {
    const { stepId } = parseUpdateInput(cancelStepInputSchema, raw);
    const result = this.records.results[stepId]!;
    const was = result.status as StepCancelled['was'];
    result.error = { type: 'Cancelled', message: 'cancelled by request' };
    const scope = this.stepScopes.get(stepId);
    if (scope) scope.cancel();
    else this.records.setStatus(stepId, 'cancelled');
    this.records.touch();
    return { stepId, was };
  }

  /** Ends the pipeline: final status in the search attributes and the details. */
  finish(status: PipelineStatus, output?: unknown): PipelineResult {
    this.status = status;
    this.output = output;
    for (const id of this.records.order)
      if (!FINAL_STEP_STATUSES.has(this.records.results[id]!.status)) this.records.setStatus(id, 'skipped');
    upsertSearchAttributes({ PantheonStatus: [status] });
    this.records.touch();
    return this.snapshot();
  }

  /** The pipeline's state as `progress` answers and the result returns it: within Temporal's payload limit. */
  snapshot(): PipelineResult {
    return boundedResult({
      name: this.identity.name,
      project: this.identity.project,
      ...(this.identity.user !== undefined && { user: this.identity.user }),
      priority: this.priorityKey,
      status: this.status,
      stepOrder: [...this.records.order],
      steps: this.records.results,
      ...(this.output !== undefined && { output: this.output }),
      usage: this.usage(),
    });
  }

  usage(): UsageReport {
    const order =
      this.carriedSteps.size === 0
        ? this.records.order
        : this.records.order.filter((id) => !this.carriedSteps.has(id));
    return withCarriedUsage(
      usageReport(order, this.records.results, this.records.rayQueueMs, this.observedSnapshot),
      this.carriedUsage,
    );
  }

  /** Starts a continued pipeline from what its earlier runs carried: their steps' records and usage. */
  restore(carried: CarriedState): void {
    for (const { id, result } of restoredRecords(carried))
      if (result.status !== 'pending') {
        this.records.restore(id, result);
        this.carriedSteps.add(id);
      }
    this.carriedUsage = carried.usage;
  }

  /** Whether a step finished in an earlier run without its output carried here (no unfinished step read it). */
  outputLeftBehind(stepId: string): boolean {
    return (
      this.carriedSteps.has(stepId) &&
      this.records.statusOf(stepId) === 'succeeded' &&
      !('output' in this.records.results[stepId]!)
    );
  }

  /** What this run would carry to the next: `needed` are the steps whose outputs unfinished steps read. */
  carry(needed: ReadonlySet<string>, runsBefore: number): CarriedState {
    // The usage of the steps that ended in this run, on top of what the runs before carried: a step not
    // yet finished is counted by the run that finishes it.
    const endedHere = this.records.order.filter(
      (id) => !this.carriedSteps.has(id) && FINAL_STEP_STATUSES.has(this.records.results[id]!.status),
    );
    const usage = withCarriedUsage(
      usageReport(endedHere, this.records.results, this.records.rayQueueMs, this.observedSnapshot),
      this.carriedUsage,
    );
    return carryState({
      order: this.records.order,
      results: this.records.results,
      needed,
      usage: usage.totals,
      priority: this.priorityKey,
      runsBefore,
    });
  }

  /** The priority now (a setPriority update may have changed it since the start). */
  snapshotPriority(): number {
    return this.priorityKey;
  }

  /** The bytes this run's history holds by its own count, and its budget. */
  historyUse(): { bytes: number; budgetBytes: number } {
    return { bytes: this.ledger.recordedBytes, budgetBytes: HISTORY_LIMITS.budgetBytes };
  }

  private renderDetailsSoon(): void {
    // The details are rendered once per burst of changes (a microtask later, still in the same workflow
    // task), not on every change: rendering is O(steps), and a pipeline makes O(steps) changes at once.
    if (this.detailsPending) return;
    this.detailsPending = true;
    void Promise.resolve().then(() => {
      this.detailsPending = false;
      setCurrentDetails(this.details());
    });
  }

  /** Markdown for the Web UI's "current details": where the pipeline is, step by step. */
  details(): string {
    return pipelineDetails(
      { ...this.identity, priority: this.priorityKey, status: this.status },
      this.records.order,
      this.records.results,
      (status) => this.records.countOf(status),
    );
  }
}
