/**
 * Task mode: the activity that runs one pipeline step as a Ray task.
 *
 * The step's key is `(workflowId, stepId)`; the dispatcher on the cluster owns
 * the task under it, so a retried attempt (after a worker crash, a heartbeat
 * timeout, a deploy) attaches to the task already running instead of starting
 * its side effect again. Completion is pushed back through the bridge; the
 * activity polls only for the heartbeat (state, node, elapsed), which is also
 * how Temporal's cancellation reaches it.
 */
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { Logger } from 'pino';
import { refuseTaskRef } from '../../workflows/schemas/task-ref';
import type { Resources } from '../../workflows/schemas/resources';
import type { RayBridge } from './bridge-client';
import { toRayOptions } from './ray-options';

export interface RayTaskStepInput {
  stepId: string;
  task: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  resources?: Resources;
  /** Ray node ids that earlier attempts failed on. */
  avoidNodes?: string[];
}

export interface RayStepOutput {
  output: unknown;
  node: string | null;
  nodes: string[];
  attempt: number;
  queuedMs: number;
  runningMs: number;
  attached: boolean;
}

export interface RayStepState {
  key: string;
  generation: number;
  state: 'pending' | 'running' | 'succeeded' | 'failed' | 'cancelled';
  node: string | null;
  nodes: string[];
  attempt: number;
  queuedMs: number;
  runningMs: number;
  attached?: boolean;
}

type Failure = { kind: string; type: string; message: string; traceback?: string };
type Outcome =
  | { ok: true; output: unknown; node: string | null; nodes: string[]; queuedMs: number; runningMs: number }
  | { ok: false; error: Failure; node: string | null; nodes?: string[] };

/** Temporal failure types for failures that come from Ray rather than from the step's own code. */
const RAY_FAILURE_TYPES: Record<string, string> = {
  oom: 'RayOutOfMemory',
  node_lost: 'RayNodeLost',
  cancelled: 'RayTaskCancelled',
  lost: 'RayStepLost',
  ray: 'RayError',
};

export interface RayTaskStepConfig {
  allowedTaskPackages: string[];
  maxResultBytes: number;
  /** How often the running task's state is read for the heartbeat. */
  statusPollMs: number;
  /** How long a cancelled task gets to stop before it is force-killed. */
  cancelGraceMs: number;
}

export function stepKey(workflowId: string, stepId: string): string {
  return `${workflowId}/${stepId}`;
}

export function createRayTaskActivities(bridge: RayBridge, config: RayTaskStepConfig, logger: Logger) {
  async function cancelRayTask(key: string): Promise<void> {
    await bridge.call('cancel', { key, force: false });
    const deadline = Date.now() + config.cancelGraceMs;
    while (Date.now() < deadline) {
      const state = await bridge.call<RayStepState | null>('status', { key });
      if (!state || (state.state !== 'running' && state.state !== 'pending')) return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    await bridge.call('cancel', { key, force: true });
  }

  async function runRayTask(input: RayTaskStepInput): Promise<RayStepOutput> {
    const ctx = Context.current();
    const { workflowExecution, attempt } = ctx.info;
    if (!workflowExecution)
      throw ApplicationFailure.nonRetryable('a pipeline step runs inside a workflow', 'NoWorkflow');
    const refused = refuseTaskRef(input.task, config.allowedTaskPackages);
    if (refused) throw ApplicationFailure.nonRetryable(refused, 'TaskRefRefused');

    const key = stepKey(workflowExecution.workflowId, input.stepId);
    const log = logger.child({ workflowId: workflowExecution.workflowId, stepId: input.stepId, attempt });
    const submitted = await bridge.call<RayStepState>('submit', {
      key,
      run: workflowExecution.runId,
      attempt,
      task: input.task,
      args: input.args,
      kwargs: input.kwargs,
      options: toRayOptions(input.resources, input.avoidNodes),
      limits: { allowed_packages: config.allowedTaskPackages, max_result_bytes: config.maxResultBytes },
    });
    log.info(
      { generation: submitted.generation, attached: submitted.attached },
      submitted.attached ? 'attached to Ray task' : 'submitted Ray task',
    );
    ctx.heartbeat(submitted);

    const poll = setInterval(() => {
      bridge
        .call<RayStepState | null>('status', { key })
        .then((state) => ctx.heartbeat(state ?? submitted))
        .catch((err: unknown) => log.warn({ err }, 'could not read Ray task state'));
    }, config.statusPollMs);
    let outcome: Outcome;
    try {
      outcome = await Promise.race([
        bridge.call<Outcome>('wait', { key, generation: submitted.generation }),
        ctx.cancelled,
      ]);
    } catch (err) {
      if (err instanceof CancelledFailure) {
        log.info('step cancelled; cancelling its Ray task');
        await cancelRayTask(key);
      }
      throw err;
    } finally {
      clearInterval(poll);
    }

    if (outcome.ok) {
      return {
        output: outcome.output,
        node: outcome.node,
        nodes: outcome.nodes,
        attempt,
        queuedMs: outcome.queuedMs,
        runningMs: outcome.runningMs,
        attached: submitted.attached ?? false,
      };
    }
    const { error } = outcome;
    log.warn({ error: { kind: error.kind, type: error.type, message: error.message } }, 'Ray task failed');
    const details = [
      {
        kind: error.kind,
        attempt,
        node: outcome.node,
        nodes: outcome.nodes ?? [],
        traceback: error.traceback,
      },
    ];
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
