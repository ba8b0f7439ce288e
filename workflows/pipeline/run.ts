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
  isCancellation,
  log,
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
  stepAttemptStartedSchema,
  type PriorityChanged,
  type StepCancelled,
} from '../../core/messages/pipeline';
import { chooseNodeGroup } from '../../core/placement';
import {
  FINAL_STEP_STATUSES,
  type AgentPerformanceSummary,
  type PipelineIdentity,
  type PipelineResult,
  type PipelineStatus,
  type StepResult,
  type StepSpec,
  type StepStatus,
  type UsageReport,
} from '../../core/schemas/pipeline-spec';
import { executeStep, failureOf, type StepPriority } from './step-execution';
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

const MAX_DETAIL_ROWS = 25;

export class PipelineRun {
  readonly results: Record<string, StepResult> = {};
  readonly order: string[] = [];
  status: PipelineStatus = 'running';
  output: unknown;
  /** Bumped on every change of step state: loops wait on it instead of polling. */
  version = 0;
  private detailsPending = false;
  /** Root of every step's cancellation scope: cancelling it stops all running steps (failFast). */
  readonly stepsScope = new CancellationScope();

  private priorityKey: number;
  private context: PlanContext = { nodeGroups: [], allowedTaskPackages: [] };
  private readonly stepOfActivity = new Map<string, string>();
  private readonly inFlight = new Set<string>();
  private readonly stepScopes = new Map<string, CancellationScope>();
  private readonly rayQueueMs: Record<string, number> = {};
  private readonly observed = new Map<string, Promise<AgentPerformanceSummary | null>>();
  private readonly observedSnapshot: Record<string, AgentPerformanceSummary | null> = {};

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

  begin(): void {
    upsertSearchAttributes({
      PantheonProject: [this.identity.project],
      PantheonPipeline: [this.identity.name],
      PantheonStatus: ['running'],
    });
    this.changed();
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

  statusOf(stepId: string): StepStatus | undefined {
    return this.results[stepId]?.status;
  }

  /** Makes a step known (pending) so progress shows it before it runs. */
  declare(stepId: string, agent?: string): StepResult {
    let result = this.results[stepId];
    if (!result) {
      result = { status: 'pending', attempts: 0, ...(agent !== undefined && { agent }) };
      this.results[stepId] = result;
      this.order.push(stepId);
      this.changed();
    }
    return result;
  }

  setStatus(stepId: string, status: StepStatus): void {
    const result = this.declare(stepId);
    result.status = status;
    if (FINAL_STEP_STATUSES.has(status)) result.finishedAtMs ??= Date.now();
    this.changed();
  }

  get allFinal(): boolean {
    return this.order.every((id) => FINAL_STEP_STATUSES.has(this.results[id]!.status));
  }

  /**
   * Runs one step to its end; never throws for the step's own failure or
   * cancellation — the result says what happened.
   */
  async runStep(step: StepSpec, inputs: StepInputs): Promise<StepResult> {
    const result = this.declare(step.id, step.agent);
    if (FINAL_STEP_STATUSES.has(result.status)) return result;
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
      this.changed();
    }
  }

  private async runTaskStep(step: StepSpec, inputs: StepInputs): Promise<StepResult> {
    const allocation = allocateStepResources({
      stepResources: step.resources,
      observed: null,
      nodeGroups: this.context.nodeGroups,
    });
    const activityId = stepActivityId(step.id);
    try {
      const group = this.groupFor(step.id, allocation);
      this.markQueued(step.id, activityId, allocation);
      const out = await executeStep(step, inputs, { group, priority: this.priority, activityId });
      return this.succeed(step.id, activityId, out);
    } catch (err) {
      return this.failOrCancel(step.id, activityId, err);
    }
  }

  private async runAgentStep(step: StepSpec, inputs: StepInputs): Promise<StepResult> {
    const chain = this.agents.fallbackChain(step.agent ?? '');
    if (chain.length === 0) {
      this.setStatus(step.id, 'failed');
      this.results[step.id]!.error = { type: 'UnknownAgent', message: `unknown agent "${step.agent}"` };
      return this.results[step.id]!;
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
        const memory = await recallForAgentStep(memoryContext, inputs);
        const group = this.groupFor(step.id, allocation);
        this.markQueued(step.id, activityId, allocation, agent.name);
        if (observed?.meanDurationMs != null)
          this.results[step.id]!.expectedRunningMs = observed.meanDurationMs;
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
          const result = this.succeed(step.id, activityId, { ...out, output: host.data.output });
          result.cpuSeconds = host.data.usage.cpuSeconds;
          result.peakMemoryMb = host.data.usage.peakMemoryMb;
          await this.report(agent, step.id, result);
          return result;
        } catch (err) {
          if (isCancellation(err)) throw err;
          const failure = failureOf(err);
          const attempts = Math.max(failure.attempts, this.results[step.id]!.attempts);
          await this.report(agent, step.id, { status: 'failed', attempts });
          const next = chain[index + 1];
          if (next === undefined) throw err;
          log.warn('agent gave up; its fallback takes over', {
            stepId: step.id,
            agent: agent.name,
            fallback: next.name,
            error: failure.message,
          });
          this.inFlight.delete(activityId);
          // From here on the step's attempts are the fallback's own; the primary's are in fallbackFrom.
          this.results[step.id]!.attempts = 0;
          this.results[step.id]!.fallbackFrom = {
            agent: agent.name,
            error: { type: failure.type, message: failure.message },
            attempts,
          };
        }
      }
      throw ApplicationFailure.nonRetryable('no agent left to run the step', 'NoAgentLeft');
    } catch (err) {
      return this.failOrCancel(step.id, activityId, err);
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

  private markQueued(stepId: string, activityId: string, allocation: Allocation, agent?: string): void {
    const result = this.declare(stepId);
    result.status = 'queued';
    result.scheduledAtMs ??= Date.now();
    result.resources = allocation.resources;
    result.allocation = allocation.allocation;
    if (agent !== undefined) result.agent = agent;
    this.stepOfActivity.set(activityId, stepId);
    this.inFlight.add(activityId);
    this.changed();
  }

  /** The `stepAttemptStarted` signal: the node-group worker saw an attempt of a step start. */
  onAttemptStarted(raw: unknown): void {
    const parsed = stepAttemptStartedSchema.safeParse(raw);
    if (!parsed.success) return;
    const { activityId, attempt, scheduledAtMs, startedAtMs } = parsed.data;
    const stepId = this.stepOfActivity.get(activityId);
    const result = stepId === undefined ? undefined : this.results[stepId];
    if (!result) return;
    // The server's scheduling time is exact, and the same on every replay (workflow time read right after a
    // local activity is not); only the first activity of a step counts, a fallback waits on its own.
    if (scheduledAtMs !== undefined && attempt === 1 && result.startedAtMs === undefined)
      result.scheduledAtMs = scheduledAtMs;
    result.startedAtMs = Math.min(result.startedAtMs ?? startedAtMs, startedAtMs);
    result.attempts = Math.max(result.attempts, attempt);
    if (result.status === 'queued') result.status = 'running';
    this.changed();
  }

  /** `out` is what executeStep returned: every field it reports is kept (memory after OOM retries, tries, job logs). */
  private succeed(stepId: string, activityId: string, out: StepResult): StepResult {
    const result = this.declare(stepId);
    this.inFlight.delete(activityId);
    const finishedAtMs = Date.now();
    const rayQueueMs = out.queuedMs ?? 0;
    const runningMs = out.runningMs ?? 0;
    const { status: _status, queuedMs: _rayQueued, startedAtMs, scheduledAtMs, ...reported } = out;
    // A step over before its start signal was due reports its own start; a first attempt also the
    // server's scheduling time. Without either (the signal lost), the start is estimated from Ray's timings.
    if (result.startedAtMs === undefined && startedAtMs !== undefined) {
      if (scheduledAtMs !== undefined) result.scheduledAtMs = scheduledAtMs;
      result.startedAtMs = startedAtMs;
    }
    result.startedAtMs ??= Math.max(
      result.scheduledAtMs ?? finishedAtMs,
      finishedAtMs - rayQueueMs - runningMs,
    );
    const temporalQueueMs = Math.max(0, result.startedAtMs - (result.scheduledAtMs ?? result.startedAtMs));
    this.rayQueueMs[stepId] = rayQueueMs;
    Object.assign(result, reported, {
      status: 'succeeded',
      output: out.output,
      attempts: Math.max(result.attempts, out.attempts),
      node: out.node,
      nodes: out.nodes,
      queuedMs: temporalQueueMs + rayQueueMs,
      runningMs,
      finishedAtMs,
    } satisfies Partial<StepResult>);
    this.changed();
    return result;
  }

  private failOrCancel(stepId: string, activityId: string, err: unknown): StepResult {
    const result = this.declare(stepId);
    this.inFlight.delete(activityId);
    const cancelled = isCancellation(err);
    const failure = failureOf(err);
    result.status = cancelled ? 'cancelled' : 'failed';
    result.attempts = Math.max(result.attempts, failure.attempts);
    result.error = cancelled
      ? { type: 'Cancelled', message: result.error?.message ?? 'the step was cancelled' }
      : { type: failure.type, message: failure.message };
    result.finishedAtMs = Date.now();
    if (result.scheduledAtMs !== undefined && result.startedAtMs !== undefined)
      result.queuedMs = Math.max(0, result.startedAtMs - result.scheduledAtMs);
    this.changed();
    return result;
  }

  private assertRunning(): void {
    if (this.status !== 'running') throw invalidUpdate(`the pipeline has already ${this.status}`);
  }

  private assertCancellable(stepId: string): void {
    const status = this.results[stepId]?.status;
    if (status === undefined)
      throw invalidUpdate(`unknown step "${stepId}" (steps: ${this.order.join(', ') || 'none yet'})`);
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
    const activityIds = [...this.inFlight];
    const changed =
      activityIds.length === 0
        ? []
        : await reprioritizeSteps({
            workflowId: workflowInfo().workflowId,
            runId: workflowInfo().runId,
            activityIds,
            priorityKey: priority,
          });
    this.changed();
    return { priority, reprioritizedSteps: changed.map((id) => this.stepOfActivity.get(id) ?? id) };
  }

  validateCancelStep(raw: unknown): void {
    const { stepId } = parseUpdateInput(cancelStepInputSchema, raw);
    this.assertRunning();
    this.assertCancellable(stepId);
  }

  /** The `cancelStep` update: the step stops; its dependants are skipped. */
  cancelStep(raw: unknown): StepCancelled {
    const { stepId } = parseUpdateInput(cancelStepInputSchema, raw);
    const result = this.results[stepId]!;
    const was = result.status as StepCancelled['was'];
    result.error = { type: 'Cancelled', message: 'cancelled by request' };
    const scope = this.stepScopes.get(stepId);
    if (scope) scope.cancel();
    else this.setStatus(stepId, 'cancelled');
    this.changed();
    return { stepId, was };
  }

  /** Ends the pipeline: final status in the search attributes and the details. */
  finish(status: PipelineStatus, output?: unknown): PipelineResult {
    this.status = status;
    this.output = output;
    for (const id of this.order)
      if (!FINAL_STEP_STATUSES.has(this.results[id]!.status)) this.setStatus(id, 'skipped');
    upsertSearchAttributes({ PantheonStatus: [status] });
    this.changed();
    return this.snapshot();
  }

  snapshot(): PipelineResult {
    return {
      name: this.identity.name,
      project: this.identity.project,
      ...(this.identity.user !== undefined && { user: this.identity.user }),
      priority: this.priorityKey,
      status: this.status,
      stepOrder: [...this.order],
      steps: this.results,
      ...(this.output !== undefined && { output: this.output }),
      usage: this.usage(),
    };
  }

  usage(): UsageReport {
    const report: UsageReport = {
      steps: {},
      agents: {},
      totals: { steps: 0, attempts: 0, cpuSeconds: 0, runningMs: 0, temporalQueueMs: 0, rayQueueMs: 0 },
    };
    for (const id of this.order) {
      const r = this.results[id]!;
      const runningMs = r.runningMs ?? 0;
      const measured = r.cpuSeconds !== undefined;
      const cpuSeconds = measured ? r.cpuSeconds! : ((r.resources?.cpus ?? 1) * runningMs) / 1000;
      const temporalQueueMs =
        r.startedAtMs !== undefined && r.scheduledAtMs !== undefined
          ? Math.max(0, r.startedAtMs - r.scheduledAtMs)
          : 0;
      const attempts = r.attempts + (r.fallbackFrom?.attempts ?? 0);
      report.steps[id] = {
        ...(r.agent !== undefined && { agent: r.agent }),
        attempts,
        ...(r.node !== undefined && { node: r.node }),
        temporalQueueMs,
        rayQueueMs: this.rayQueueMs[id] ?? 0,
        runningMs,
        cpuSeconds: Math.round(cpuSeconds * 1000) / 1000,
        cpuSecondsMeasured: measured,
        ...(r.resources?.memoryMb !== undefined && { requestedMemoryMb: r.resources.memoryMb }),
        ...(r.peakMemoryMb !== undefined && { peakMemoryMb: r.peakMemoryMb }),
      };
      const t = report.totals;
      t.steps++;
      t.attempts += attempts;
      t.cpuSeconds = Math.round((t.cpuSeconds + cpuSeconds) * 1000) / 1000;
      t.runningMs += runningMs;
      t.temporalQueueMs += temporalQueueMs;
      t.rayQueueMs += this.rayQueueMs[id] ?? 0;
      if (r.peakMemoryMb !== undefined) t.peakMemoryMb = Math.max(t.peakMemoryMb ?? 0, r.peakMemoryMb);
      const agentUsage = (agent: string) =>
        (report.agents[agent] ??= {
          steps: 0,
          attempts: 0,
          cpuSeconds: 0,
          observed: this.observedSnapshot[agent] ?? null,
        });
      if (r.fallbackFrom) {
        // The agent that gave up spent attempts on the step too.
        const primary = agentUsage(r.fallbackFrom.agent);
        primary.steps++;
        primary.attempts += r.fallbackFrom.attempts;
      }
      if (r.agent !== undefined) {
        const a = agentUsage(r.agent);
        a.steps++;
        a.attempts += r.attempts;
        a.cpuSeconds = Math.round((a.cpuSeconds + cpuSeconds) * 1000) / 1000;
        if (r.peakMemoryMb !== undefined) a.peakMemoryMb = Math.max(a.peakMemoryMb ?? 0, r.peakMemoryMb);
      }
    }
    return report;
  }

  private changed(): void {
    this.version++;
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
    const counts: Partial<Record<StepStatus, number>> = {};
    for (const id of this.order) {
      const s = this.results[id]!.status;
      counts[s] = (counts[s] ?? 0) + 1;
    }
    const summary = Object.entries(counts)
      .map(([status, n]) => `${n} ${status}`)
      .join(', ');
    const lines = this.order.slice(0, MAX_DETAIL_ROWS).map((id) => {
      const r = this.results[id]!;
      const facts = [
        r.status,
        ...(r.agent
          ? [`agent ${r.agent}${r.fallbackFrom ? ` (fallback for ${r.fallbackFrom.agent})` : ''}`]
          : []),
        ...(r.attempts > 1 ? [`attempt ${r.attempts}`] : []),
        ...(r.node ? [`node ${r.node.slice(0, 8)}`] : []),
      ];
      return `- \`${id}\` ${facts.join(' · ')}`;
    });
    const more =
      this.order.length > MAX_DETAIL_ROWS
        ? [`- … and ${this.order.length - MAX_DETAIL_ROWS} more steps`]
        : [];
    return [
      `**${this.identity.name}** · project ${this.identity.project} · priority ${this.priorityKey} · ${this.status}`,
      '',
      summary || 'no steps yet',
      '',
      ...lines,
      ...more,
    ].join('\n');
  }
}
