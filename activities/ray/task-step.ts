/**
 * Task mode: the activity that runs one pipeline step as a Ray task.
 *
 * The step's key is `(workflowId, stepId)`; the dispatcher on the cluster owns
 * the task under it, so a retried attempt (after a worker crash, a heartbeat
 * timeout, a deploy) attaches to the task already running instead of starting
 * its side effect again. Completion is pushed back through the bridge; the
 * activity polls only for the heartbeat (state, node, elapsed), which is also
 * how Temporal's cancellation reaches it.
 *
 * Retries belong to Temporal alone (Ray tasks run with max_retries=0 and
 * RAY_task_oom_retries=0). Each attempt plans its Ray options from the key's
 * history in the dispatcher (attempt-policy.ts): away from nodes that died
 * under it, with more memory after an OOM, up to a cap.
 *
 * The dispatcher refuses before anything runs (non-retryable failures naming
 * the field): a task outside its own allowlist (`TaskRefRefused`), or other
 * work (task, arguments, declared resources) than what the key holds
 * (`StepKeyConflict`). An answer the bridge could not send as JSON fails the
 * attempt at once, non-retryably, rather than waiting for the step's timeout.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Logger } from 'pino';
import type { NodeGroup } from '../../core/schemas/node-groups';
import type { Resources } from '../../core/schemas/resources';
import type { MapCall, MapItems } from '../../core/schemas/map-step';
import { refuseTaskRef } from '../../core/schemas/task-ref';
import { AGENT_HOST_TASK } from '../../core/agent-host';
import { nodeGroupTaskQueue } from '../../core/task-queues';
import { planAttempt, type AttemptPolicyConfig, type PriorTry } from './attempt-policy';
import { AttemptSupervisor } from './attempt-supervisor';
import {
  DispatcherClient,
  isRayUnavailable,
  refusalOf,
  type HistoryItem,
  type RayStepState,
} from './dispatcher-client';
import { PythonHelperCallError } from '../../stack/python-helper';
import { toRayOptions } from './ray-options';
import type { WorkflowClosedCheck } from './workflow-liveness';

export type { RayStepState } from './dispatcher-client';

export interface RayTaskStepInput {
  stepId: string;
  task: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  resources?: Resources;
  /** Ray node ids to keep off, on top of those the step's own history rules out. */
  avoidNodes?: string[];
  /** The node group the step runs in (absent from activities scheduled before it was sent). */
  group?: string;
  /** A map step: `task` runs once per item of `map.over`, each item its own Ray task. */
  map?: MapCall;
}

export interface RayStepOutput {
  output: unknown;
  node: string | null;
  /** Every node the step's task ran on, over all generations, in order. */
  nodes: string[];
  attempt: number;
  queuedMs: number;
  runningMs: number;
  attached: boolean;
  /** The memory request the successful generation ran with (null: none). */
  memoryMb: number | null;
  /** Every finished generation of the step's task, the successful one last. */
  tries: PriorTry[];
  /** When this attempt started on the worker (epoch ms): a short step's start, which no start signal reports. */
  startedAtMs: number;
  /** When the server scheduled this attempt (epoch ms). */
  scheduledAtMs: number;
  /** A map step's items. */
  items?: MapItems;
}

const MB = 1024 * 1024;
const bytesToMb = (bytes: number | null | undefined) => (bytes ? Math.round(bytes / MB) : null);

function toTries(history: HistoryItem[]): PriorTry[] {
  return history.map((h) => ({
    generation: h.generation,
    attempt: h.attempt,
    outcome: h.outcome,
    node: h.node,
    memoryMb: bytesToMb(h.memoryBytes),
    ...(h.reason && { reason: h.reason }),
  }));
}

/** Temporal failure types for failures that come from Ray rather than from the step's own code. */
const RAY_FAILURE_TYPES: Record<string, string> = {
  oom: 'RayOutOfMemory',
  node_lost: 'RayNodeLost',
  worker_crashed: 'RayWorkerCrashed',
  cancelled: 'RayTaskCancelled',
  lost: 'RayStepLost',
  ray: 'RayError',
};

export type MemoryGuardMode = 'auto' | 'cgroup' | 'rlimit' | 'off';

/**
 * The worker's side of cluster-wide admission (workers/cluster-admission.ts): an activity polled
 * under a unit of its group exchanges it, when it submits, for the step's exact request.
 */
export interface StepAdmission {
  /** The lease and group of the unit this activity holds and has not exchanged yet. */
  unitOf(ctx: Context): { holder: string; group: string } | undefined;
  /** The dispatcher took the unit (it submitted the step, or attached to its running task). */
  exchanged(ctx: Context): void;
}

/** Temporal's default priority key (the middle of 1–5): what a step that names none runs at. */
const DEFAULT_PRIORITY_KEY = 3;

export interface RayTaskStepConfig {
  allowedTaskPackages: string[];
  maxResultBytes: number;
  /** Outputs above this go to the Ray side's blob store (0: never); an agent host's never do. */
  blobThresholdBytes: number;
  /** The S3-compatible store those outputs go to (`s3://bucket/prefix`); unset: the Ray side's directory. */
  blobUrl?: string;
  /** How often the running task's state is read for the heartbeat. */
  statusPollMs: number;
  /** How long a cancelled task gets to stop before it is force-killed. */
  cancelGraceMs: number;
  /** How a step is held to its memory request on the node (ray-tasks/pantheon_runtime/memory_guard.py). */
  memoryGuard: MemoryGuardMode;
  /** The most memory an OOM retry may ask for; one node of the step's group caps it further. */
  maxStepMemoryMb: number;
  /** The memory a step that asked for none is retried with after an OOM. */
  firstOomMemoryMb: number;
  /** The node groups, to know how much memory one node of the step's group has. */
  nodeGroups: readonly NodeGroup[];
  /** Asked when a heartbeat comes back "not found": only a closed workflow's step stops its Ray task. */
  workflowClosed?: WorkflowClosedCheck;
  /** Cluster-wide admission; without it, steps are submitted unbound (Ray alone places them). */
  admission?: StepAdmission;
}

/** Bridge errors meaning the answer itself could not travel as JSON: a retry would get the same answer. */
const UNSENDABLE_ANSWERS = new Set(['UnserialisableAnswer', 'UnparseableAnswer']);

function unsendableIsFinal<T>(answer: Promise<T>): Promise<T> {
  return answer.catch((err: unknown) => {
    if (err instanceof PythonHelperCallError && UNSENDABLE_ANSWERS.has(err.type))
      throw ApplicationFailure.nonRetryable(err.message, err.type);
    throw err;
  });
}

export function stepKey(workflowId: string, stepId: string): string {
  return `${workflowId}/${stepId}`;
}

/** The attempt policy's limits for a step of node group `groupName`. */
export function policyConfigFor(
  config: RayTaskStepConfig,
  groupName: string | undefined,
): AttemptPolicyConfig {
  const group = config.nodeGroups.find((g) => g.name === groupName);
  const memoryCapMb = Math.min(config.maxStepMemoryMb, group?.node.memoryMb ?? Number.POSITIVE_INFINITY);
  return { memoryCapMb, firstOomMemoryMb: Math.min(config.firstOomMemoryMb, memoryCapMb) };
}

/** How many times an attempt re-plans when another attempt moved the key on meanwhile. */
const MAX_PLAN_CONFLICTS = 3;

/** How long an attempt waits for a Ray that went away to answer again before it fails as it is. */
const RAY_RECOVERY_TIMEOUT_MS = 15 * 60_000;

export function createRayTaskActivities(
  dispatcher: DispatcherClient,
  config: RayTaskStepConfig,
  logger: Logger,
) {
  const readState = (key: string) => dispatcher.status(key);

  /**
   * Cancels the key's Ray task on behalf of `(run, attempt)` and returns once it has stopped:
   * the dispatcher interrupts it, and force-kills it if it is still running after the grace (a
   * task stuck in native code, or swallowing the interrupt). It refuses if a newer attempt has
   * taken the task over.
   */
  async function cancelRayTask(key: string, run: string, attempt: number): Promise<void> {
    await dispatcher.cancel({ key, run, attempt, graceMs: config.cancelGraceMs, wait: true });
  }

  /**
   * Attaches to the key's task, or plans the next generation from the key's
   * history and submits it; plans again if another attempt moved the key on.
   */
  async function submitOrAttach(
    input: RayTaskStepInput,
    key: string,
    workflowId: string,
    run: string,
    attempt: number,
    policy: AttemptPolicyConfig,
    log: Logger,
  ): Promise<RayStepState> {
    const limits = {
      max_result_bytes: config.maxResultBytes,
      memory_guard: config.memoryGuard,
      // The workflow reads an agent host's output (validation, memories to keep): it stays inline.
      blob_threshold_bytes: input.task === AGENT_HOST_TASK ? 0 : config.blobThresholdBytes,
      ...(config.blobUrl ? { blob_store: config.blobUrl } : {}),
    };
    // A first attempt almost always finds no task under its key: it submits at once, planned from an empty
    // history, and reads the key only if the dispatcher answers that the key has moved on (one bridge round
    // trip less per step). Running or pending work is attached to by the submit itself either way.
    let optimistic = attempt === 1 && planAttempt(input.stepId, input.resources ?? {}, [], policy).ok;
    const ctx = Context.current();
    const unit = config.admission?.unitOf(ctx);
    const admission = unit && {
      ...unit,
      priority: ctx.info.priority?.priorityKey ?? DEFAULT_PRIORITY_KEY,
    };
    for (let conflicts = 0; ; conflicts++) {
      const prior = optimistic ? null : await readState(key);
      const tries = toTries(prior?.history ?? []);
      const plan = planAttempt(input.stepId, input.resources ?? {}, tries, policy);
      // A task still pending or running is attached to whatever the plan says; only a new generation uses it.
      const active = prior?.state === 'pending' || prior?.state === 'running';
      if (!plan.ok && !active)
        throw ApplicationFailure.create({
          type: plan.type,
          message: plan.message,
          nonRetryable: true,
          details: [{ attempt, tries }],
        });
      const resources = plan.ok ? plan.resources : (input.resources ?? {});
      const avoidNodes = [...new Set([...(plan.ok ? plan.avoidNodes : []), ...(input.avoidNodes ?? [])])];
      const answer = await dispatcher.submit({
        key,
        workflowId,
        run,
        attempt,
        task: input.task,
        args: input.args,
        kwargs: input.kwargs,
        resources: input.resources ?? {},
        options: toRayOptions(resources, avoidNodes),
        limits,
        plan: { basedOn: prior?.generation ?? null },
        ...(input.map !== undefined && { map: input.map }),
        ...(admission && { admission }),
      });
      if ('refused' in answer) {
        const refusal = refusalOf(answer);
        throw ApplicationFailure.create({
          type: refusal?.type ?? 'DispatcherRefused',
          message: refusal?.message ?? `the dispatcher refused step ${key}`,
          nonRetryable: true,
          details: [{ attempt, field: refusal?.field }],
        });
      }
      if ('conflict' in answer) {
        if (optimistic) {
          // Not a race with another attempt: this one had not read the key yet. Plan from its history now.
          optimistic = false;
          conflicts--;
          continue;
        }
        if (conflicts >= MAX_PLAN_CONFLICTS)
          throw ApplicationFailure.retryable(
            `step ${key} kept changing while this attempt planned`,
            'RayStepBusy',
          );
        continue;
      }
      // Submitted or attached: the dispatcher took this activity's unit.
      config.admission?.exchanged(ctx);
      if (!answer.attached)
        log.info(
          { generation: answer.generation, memoryMb: resources.memoryMb, avoidNodes, tries: tries.length },
          'submitted Ray task',
        );
      else log.info({ generation: answer.generation, state: answer.state }, 'attached to Ray task');
      return answer;
    }
  }

  /**
   * One attempt; when Ray itself goes away under it (the head or the dispatcher died: the bridge
   * answers ActorUnavailableError and the like, or exits), the attempt waits — heartbeating — until
   * a restarted bridge reaches a dispatcher again (after `npm run stack:up` or the operator brought
   * the head back), then fails retryably so that the next attempt submits the step to the new
   * dispatcher: the at-least-once edge of docs/ray-execution.md. Waiting here rather than failing
   * at once keeps a head restart from spending every retry the step has.
   */
  async function runRayTask(input: RayTaskStepInput): Promise<RayStepOutput> {
    try {
      return await attemptRayTask(input);
    } catch (err) {
      if (!isRayUnavailable(err)) throw err;
      const ctx = Context.current();
      const log = logger.child({ stepId: input.stepId, attempt: ctx.info.attempt });
      log.warn(
        { err },
        'Ray is unavailable (its head or the dispatcher died); waiting for it to answer again',
      );
      await new AttemptSupervisor(ctx, config, log).keepAlive(
        () => ({ state: 'waiting for Ray' }),
        () => dispatcher.recover(RAY_RECOVERY_TIMEOUT_MS),
      );
      log.info('Ray answers again; the next attempt submits the step anew');
      throw ApplicationFailure.retryable(
        `Ray became unavailable while this attempt ran (${err instanceof Error ? err.message.split('\n')[0] : String(err)}); ` +
          'it answers again, and the next attempt submits the step anew',
        'RayUnavailable',
      );
    }
  }

  async function attemptRayTask(input: RayTaskStepInput): Promise<RayStepOutput> {
    const ctx = Context.current();
    const startedAtMs = Date.now();
    const { attempt, taskQueue } = ctx.info;
    const log0 = logger.child({ stepId: input.stepId, attempt });
    const supervisor = new AttemptSupervisor(ctx, config, log0);
    const refused = refuseTaskRef(input.task, config.allowedTaskPackages);
    if (refused) throw ApplicationFailure.nonRetryable(`task: ${refused}`, 'TaskRefRefused');

    const key = stepKey(supervisor.workflowId, input.stepId);
    const log = log0.child({ workflowId: supervisor.workflowId });
    // Activities scheduled before the workflow sent the group name it by their queue alone.
    const groupName =
      input.group ?? config.nodeGroups.find((g) => nodeGroupTaskQueue(g.name) === taskQueue)?.name;
    const policy = policyConfigFor(config, groupName);

    const submitted = await supervisor.keepAlive(
      () => ({ key, state: 'submitting' }),
      () => submitOrAttach(input, key, supervisor.workflowId, supervisor.runId, attempt, policy, log),
    );
    const generation = submitted.generation;

    const poll = setInterval(() => {
      readState(key)
        .then((state) => ctx.heartbeat(state ?? submitted))
        .catch((err: unknown) => log.warn({ err }, 'could not read Ray task state'));
    }, config.statusPollMs);
    let outcome;
    try {
      outcome = await supervisor.watch(unsendableIsFinal(dispatcher.wait(key, generation)), {
        noun: 'Ray task',
        stop: () => cancelRayTask(key, supervisor.runId, attempt),
        timeoutType: 'RayTaskTimedOut',
      });
    } finally {
      clearInterval(poll);
    }

    const tries = toTries(outcome.history);
    if (outcome.ok) {
      return {
        output: outcome.output,
        node: outcome.node,
        nodes: outcome.nodes,
        attempt,
        queuedMs: outcome.queuedMs,
        runningMs: outcome.runningMs,
        attached: submitted.attached ?? false,
        memoryMb: bytesToMb(outcome.memoryBytes),
        tries,
        startedAtMs,
        scheduledAtMs: Math.round(ctx.info.currentAttemptScheduledTimestampMs),
        ...(outcome.items !== undefined && { items: outcome.items }),
      };
    }
    const { error } = outcome;
    log.warn({ error: { kind: error.kind, type: error.type, message: error.message } }, 'Ray task failed');
    const details = [
      {
        kind: error.kind,
        attempt,
        node: outcome.node,
        nodes: outcome.nodes,
        memoryMb: bytesToMb(outcome.memoryBytes),
        tries,
        traceback: error.traceback,
        ...(outcome.items !== undefined && { items: outcome.items }),
        ...(error.failedItems !== undefined && {
          failedItems: error.failedItems,
          failedCount: error.failedCount,
          notStarted: error.notStarted,
        }),
      },
    ];
    if (error.kind === 'oom') {
      // Decide now whether a retry could get more memory: at the cap, say so and stop here
      // rather than let Temporal spend a retry interval to learn the same thing.
      const next = planAttempt(input.stepId, input.resources ?? {}, tries, policy);
      if (!next.ok)
        throw ApplicationFailure.create({
          type: next.type,
          message: `${next.message}; last failure: ${error.message}`,
          nonRetryable: true,
          details,
        });
    }
    throw ApplicationFailure.create({
      type: RAY_FAILURE_TYPES[error.kind] ?? error.type,
      message: error.message,
      nonRetryable: error.kind === 'rejected',
      details,
    });
  }

  return { runRayTask };
}

export type RayTaskActivities = ReturnType<typeof createRayTaskActivities>;
