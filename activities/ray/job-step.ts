/**
 * Job mode: the activity that runs one pipeline step as a Ray job, through
 * the Ray Jobs REST API on the dashboard (`/api/jobs/`).
 *
 * The job's `submission_id` is derived from the step key `(workflowId,
 * stepId)`, so a retried attempt (after a worker crash) submits the same id;
 * Ray refuses a second job with that id (HTTP 500, "Please use a different
 * submission_id") and the attempt attaches to the job already there instead
 * of running the script twice. The rules match task mode's dispatcher: a job
 * still pending or running is always attached to; a succeeded job is attached
 * to by the same workflow run; a failed or stopped job is the answer of the
 * attempt that submitted it, and a later attempt submits the next generation
 * (`<id>-r2`, `<id>-r3`, ...), because Ray never accepts an id twice.
 *
 * The entrypoint is sent as data, as the step spec gave it: the project never
 * builds a shell string out of it. Job mode is opt-in: a job runs only if the
 * operator's policy lists its entrypoint and allows its runtime_env fields
 * (core/schemas/job-policy.ts); otherwise it fails at once, non-retryably
 * (`JobRefused`). The job's processes get the environment of the Ray node
 * (which the stack sets explicitly, stack/config.ts) plus the step's
 * `runtimeEnv.env_vars`, never the worker's own environment.
 */
import * as crypto from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { Logger } from 'pino';
import { refuseJob, type JobPolicy } from '../../core/schemas/job-policy';
import type { Resources } from '../../core/schemas/resources';
import { AttemptSupervisor } from './attempt-supervisor';
import { JobApiError, RayJobsClient, TERMINAL, type RayJobInfo } from './ray-jobs-client';
import { toRayOptions } from './ray-options';
import type { WorkflowClosedCheck } from './workflow-liveness';

export { JobApiError, tailOf, type RayJobInfo } from './ray-jobs-client';

export interface RayJobSpec {
  entrypoint: string;
  runtimeEnv?: Record<string, unknown>;
  metadata?: Record<string, string>;
}

export interface RayJobStepInput {
  stepId: string;
  job: RayJobSpec;
  resources?: Resources;
}

export interface RayJobOutput {
  submissionId: string;
  status: 'SUCCEEDED';
  exitCode: number | null;
  /** The last lines of the job's output. */
  logTail: string;
  node: string | null;
  attempt: number;
  attached: boolean;
  runningMs: number;
}

export interface RayJobStepConfig {
  dashboardUrl: string;
  /** How often the job's status and log tail are read for the heartbeat. */
  statusPollMs: number;
  /** How much of the end of the job's log goes into heartbeats and the result. */
  logTailBytes: number;
  /** How long a stopped job gets to end before the activity stops waiting for it. */
  stopWaitMs: number;
  /** Asked when a heartbeat comes back "not found": only a closed workflow's step stops its job. */
  workflowClosed?: WorkflowClosedCheck;
  /** The operator's job policy (core/schemas/job-policy.ts); null: job mode is off and every job is refused. */
  policy: JobPolicy | null;
}

const META_KEY = 'pantheon_key';
const META_RUN = 'pantheon_run';
const META_ATTEMPT = 'pantheon_attempt';

/** Generations a step may go through: bounded, so a broken rule cannot loop. */
const MAX_GENERATIONS = 1000;

/**
 * The submission id of a step's first job: readable (workflow id and step id,
 * with characters unsafe in URLs and file names replaced) plus a hash of the
 * exact key, so two keys that read alike never share an id. Pure.
 */
export function jobSubmissionId(workflowId: string, stepId: string, generation = 1): string {
  const hash = crypto.createHash('sha256').update(`${workflowId}/${stepId}`).digest('hex').slice(0, 10);
  const readable = `${workflowId}.${stepId}`.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 120);
  const base = `pantheon-${readable}-${hash}`;
  return generation <= 1 ? base : `${base}-r${generation}`;
}

/** The Ray Jobs request fields for a step's resources: the same mapping as task mode. Pure. */
export function entrypointResources(resources: Resources = {}): Record<string, unknown> {
  const options = toRayOptions(resources);
  return {
    entrypoint_num_cpus: options.num_cpus,
    ...(options.num_gpus !== undefined && { entrypoint_num_gpus: options.num_gpus }),
    ...(options.memory !== undefined && { entrypoint_memory: options.memory }),
    ...(options.resources !== undefined && { entrypoint_resources: options.resources }),
    ...(options.label_selector !== undefined && { entrypoint_label_selector: options.label_selector }),
  };
}

/** Whether an existing job answers this attempt, or the attempt needs the next generation. Pure. */
export function attachesToJob(info: RayJobInfo, run: string, attempt: number): boolean {
  if (!TERMINAL.has(info.status)) return true;
  if (info.metadata?.[META_RUN] !== run) return false;
  if (info.status === 'SUCCEEDED') return true;
  return attempt <= Number(info.metadata?.[META_ATTEMPT] ?? 0);
}

export function createRayJobActivities(config: RayJobStepConfig, logger: Logger) {
  const jobs = new RayJobsClient(config.dashboardUrl, config.logTailBytes, config.stopWaitMs);

  /** Submits generation after generation until one is new or answers this attempt. */
  async function submitOrAttach(
    input: RayJobStepInput,
    workflowId: string,
    run: string,
    attempt: number,
    log: Logger,
  ): Promise<{ id: string; attached: boolean }> {
    for (let generation = 1; generation <= MAX_GENERATIONS; generation++) {
      const id = jobSubmissionId(workflowId, input.stepId, generation);
      const answer = await jobs.submit({
        entrypoint: input.job.entrypoint,
        submission_id: id,
        runtime_env: input.job.runtimeEnv,
        metadata: {
          ...input.job.metadata,
          [META_KEY]: `${workflowId}/${input.stepId}`,
          [META_RUN]: run,
          [META_ATTEMPT]: String(attempt),
        },
        ...entrypointResources(input.resources),
      });
      if (answer.accepted) {
        log.info({ submissionId: id, generation }, 'submitted Ray job');
        return { id, attached: false };
      }
      if (!answer.duplicate) throw new JobApiError(`POST /api/jobs/ for ${id}: ${answer.answer}`);
      const existing = await jobs.jobInfo(id);
      if (!existing) throw new JobApiError(`Ray says job ${id} exists but does not return it`);
      if (attachesToJob(existing, run, attempt)) {
        log.info({ submissionId: id, status: existing.status }, 'attached to Ray job');
        return { id, attached: true };
      }
    }
    throw new JobApiError(`step ${input.stepId} has used ${MAX_GENERATIONS} job generations`);
  }

  async function runRayJob(input: RayJobStepInput): Promise<RayJobOutput> {
    const ctx = Context.current();
    const { attempt } = ctx.info;
    // Planning refuses such a step already; this is the fence for anyone scheduling the activity directly.
    const refused = refuseJob(input.job, config.policy, 'job');
    if (refused) throw ApplicationFailure.nonRetryable(`${refused.path}: ${refused.message}`, 'JobRefused');
    const log0 = logger.child({ stepId: input.stepId, attempt });
    const supervisor = new AttemptSupervisor(ctx, config, log0);
    const log = log0.child({ workflowId: supervisor.workflowId });
    // The latest details are re-sent on a timer, so a slow call to the dashboard (a submission can
    // take seconds) does not look like a dead worker to the heartbeat timeout.
    let details: Record<string, unknown> = { status: 'SUBMITTING' };
    ctx.heartbeat(details);
    return supervisor.keepAlive(
      () => details,
      () =>
        superviseJob(supervisor, input, log, (next) => {
          details = next;
          ctx.heartbeat(next);
        }),
    );
  }

  async function superviseJob(
    supervisor: AttemptSupervisor,
    input: RayJobStepInput,
    log: Logger,
    heartbeat: (details: Record<string, unknown>) => void,
  ): Promise<RayJobOutput> {
    const { attempt } = supervisor;
    const { id, attached } = await submitOrAttach(
      input,
      supervisor.workflowId,
      supervisor.runId,
      attempt,
      log,
    );

    let tail = '';
    const started = Date.now();
    let watching = true;
    /** Reads the job's status and log tail into the heartbeat until the job ends (or the watch does). */
    async function pollToEnd(): Promise<RayJobInfo> {
      for (;;) {
        const current = await jobs.jobInfo(id);
        if (!current) throw ApplicationFailure.retryable(`Ray job ${id} disappeared`, 'RayJobLost');
        tail = (await jobs.logTail(id, current.driver_node_id)) || tail;
        if (!watching) throw new Error('the attempt stopped watching its job');
        heartbeat({
          submissionId: id,
          status: current.status,
          node: current.driver_node_id ?? null,
          elapsedMs: Date.now() - started,
          logTail: tail,
        });
        if (TERMINAL.has(current.status)) return current;
        await new Promise((resolve) => setTimeout(resolve, config.statusPollMs));
      }
    }
    let info: RayJobInfo;
    try {
      info = await supervisor.watch(pollToEnd(), {
        noun: 'Ray job',
        stop: () => jobs.stop(id),
        timeoutType: 'RayJobTimedOut',
      });
    } finally {
      watching = false;
    }

    // The tail read alongside the final status may predate the script's last lines.
    tail = (await jobs.logTail(id, info.driver_node_id)) || tail;
    const runningMs = info.start_time && info.end_time ? info.end_time - info.start_time : 0;
    const exitCode = info.driver_exit_code ?? null;
    const details = [{ attempt, submissionId: id, status: info.status, exitCode, logTail: tail }];
    if (info.status === 'SUCCEEDED')
      return {
        submissionId: id,
        status: 'SUCCEEDED',
        exitCode,
        logTail: tail,
        node: info.driver_node_id ?? null,
        attempt,
        attached,
        runningMs,
      };
    if (info.status === 'STOPPED')
      // Stopped by someone (this step's cancel ends above): a retry would undo their decision.
      throw ApplicationFailure.create({
        type: 'RayJobStopped',
        message: `Ray job ${id} was stopped${info.message ? `: ${info.message}` : ''}`,
        nonRetryable: true,
        details,
      });
    throw ApplicationFailure.create({
      type: 'RayJobFailed',
      message:
        `Ray job ${id} failed` +
        (exitCode !== null ? ` with exit code ${exitCode}` : '') +
        (info.message ? `: ${info.message.slice(0, 1000)}` : ''),
      details,
    });
  }

  return { runRayJob };
}

export type RayJobActivities = ReturnType<typeof createRayJobActivities>;
