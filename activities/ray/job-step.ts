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
 * builds a shell string out of it.
 */
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Resources } from '../../workflows/schemas/resources';
import { toRayOptions } from './ray-options';
import { assumeWorkflowOpen, type WorkflowClosedCheck } from './workflow-liveness';

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
}

const JOB_STATUSES = ['PENDING', 'RUNNING', 'STOPPED', 'SUCCEEDED', 'FAILED'] as const;
type JobStatus = (typeof JOB_STATUSES)[number];
const TERMINAL: ReadonlySet<JobStatus> = new Set(['STOPPED', 'SUCCEEDED', 'FAILED']);

const jobInfoSchema = z.object({
  submission_id: z.string().nullable().optional(),
  status: z.enum(JOB_STATUSES),
  message: z.string().nullable().optional(),
  error_type: z.string().nullable().optional(),
  start_time: z.number().nullable().optional(),
  end_time: z.number().nullable().optional(),
  metadata: z.record(z.string(), z.string()).nullable().optional(),
  driver_node_id: z.string().nullable().optional(),
  driver_exit_code: z.number().nullable().optional(),
});
export type RayJobInfo = z.infer<typeof jobInfoSchema>;

const META_KEY = 'pantheon_key';
const META_RUN = 'pantheon_run';
const META_ATTEMPT = 'pantheon_attempt';

/** How long before Temporal's start-to-close timeout the attempt stops its job itself. */
const ATTEMPT_DEADLINE_MARGIN_MS = 1_000;

/** Lines asked of the driver's log for its tail (then cut to the configured size). */
const LOG_TAIL_LINES = 200;

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

/** The last `maxBytes` of a log, cut at a line start when one is near. Pure. */
export function tailOf(log: string, maxBytes: number): string {
  if (log.length <= maxBytes) return log;
  const cut = log.slice(log.length - maxBytes);
  const newline = cut.indexOf('\n');
  return newline >= 0 && newline < cut.length - 1 ? cut.slice(newline + 1) : cut;
}

/** Whether an existing job answers this attempt, or the attempt needs the next generation. Pure. */
export function attachesToJob(info: RayJobInfo, run: string, attempt: number): boolean {
  if (!TERMINAL.has(info.status)) return true;
  if (info.metadata?.[META_RUN] !== run) return false;
  if (info.status === 'SUCCEEDED') return true;
  return attempt <= Number(info.metadata?.[META_ATTEMPT] ?? 0);
}

export class JobApiError extends Error {
  override name = 'JobApiError';
}

export function createRayJobActivities(config: RayJobStepConfig, logger: Logger) {
  const api = config.dashboardUrl.replace(/\/$/, '');

  // node:http rather than fetch: fetch always sends Sec-Fetch-Mode, and the Ray dashboard refuses
  // POSTs that look like browser traffic (HTTP 405).
  function request(method: 'GET' | 'POST', path: string, body?: unknown) {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = (api.startsWith('https:') ? https : http).request(
        `${api}${path}`,
        {
          method,
          timeout: 30_000,
          headers:
            payload === undefined
              ? {}
              : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (chunk: Buffer) => chunks.push(chunk));
          res.on('end', () =>
            resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }),
          );
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new JobApiError(`${method} ${path}: no answer in 30 s`)));
      req.on('error', reject);
      req.end(payload);
    });
  }

  async function jobInfo(id: string): Promise<RayJobInfo | null> {
    const res = await request('GET', `/api/jobs/${encodeURIComponent(id)}`);
    if (res.status === 404) return null;
    if (res.status !== 200)
      throw new JobApiError(`GET /api/jobs/${id}: HTTP ${res.status}: ${res.text.slice(0, 500)}`);
    const parsed = jobInfoSchema.safeParse(JSON.parse(res.text));
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new JobApiError(`GET /api/jobs/${id}: invalid ${issue?.path.join('.')}: ${issue?.message}`);
    }
    return parsed.data;
  }

  /**
   * The end of the job's driver log. Asked first of the driver node's log
   * agent through the state API (only the last lines travel, and it reads the
   * node's own log folder, which the Jobs API's log endpoint misses when nodes
   * have temp dirs of their own); the Jobs API's full log is the fallback.
   */
  async function logTail(id: string, driverNode: string | null | undefined): Promise<string> {
    if (driverNode) {
      const query = new URLSearchParams({
        node_id: driverNode,
        filename: `job-driver-${id}.log`,
        lines: String(LOG_TAIL_LINES),
      });
      const res = await request('GET', `/api/v0/logs/file?${query}`);
      if (res.status === 200) return tailOf(res.text, config.logTailBytes);
    }
    const res = await request('GET', `/api/jobs/${encodeURIComponent(id)}/logs`);
    if (res.status !== 200) return '';
    const parsed = z.object({ logs: z.string() }).safeParse(JSON.parse(res.text));
    return parsed.success ? tailOf(parsed.data.logs, config.logTailBytes) : '';
  }

  async function stopJob(id: string): Promise<void> {
    const res = await request('POST', `/api/jobs/${encodeURIComponent(id)}/stop`);
    if (res.status !== 200 && res.status !== 404)
      throw new JobApiError(`POST /api/jobs/${id}/stop: HTTP ${res.status}: ${res.text.slice(0, 500)}`);
    const deadline = Date.now() + config.stopWaitMs;
    while (Date.now() < deadline) {
      const info = await jobInfo(id);
      if (!info || TERMINAL.has(info.status)) return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

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
      const res = await request('POST', '/api/jobs/', {
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
      if (res.status === 200) {
        log.info({ submissionId: id, generation }, 'submitted Ray job');
        return { id, attached: false };
      }
      if (!res.text.includes('Please use a different submission_id'))
        throw new JobApiError(`POST /api/jobs/ for ${id}: HTTP ${res.status}: ${res.text.slice(-1000)}`);
      const existing = await jobInfo(id);
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
    const { workflowExecution, attempt } = ctx.info;
    if (!workflowExecution)
      throw ApplicationFailure.nonRetryable('a pipeline step runs inside a workflow', 'NoWorkflow');
    const log = logger.child({ workflowId: workflowExecution.workflowId, stepId: input.stepId, attempt });
    // The latest details are re-sent on a timer, so a slow call to the dashboard (a submission can
    // take seconds) does not look like a dead worker to the heartbeat timeout.
    let details: Record<string, unknown> = { status: 'SUBMITTING' };
    ctx.heartbeat(details);
    const keepalive = setInterval(() => ctx.heartbeat(details), config.statusPollMs);
    try {
      const execution = { workflowId: workflowExecution.workflowId, runId: workflowExecution.runId };
      return await superviseJob(ctx, execution, input, log, (next) => {
        details = next;
        ctx.heartbeat(next);
      });
    } finally {
      clearInterval(keepalive);
    }
  }

  async function superviseJob(
    ctx: Context,
    execution: { workflowId: string; runId: string },
    input: RayJobStepInput,
    log: Logger,
    heartbeat: (details: Record<string, unknown>) => void,
  ): Promise<RayJobOutput> {
    const { attempt } = ctx.info;
    const { id, attached } = await submitOrAttach(input, execution.workflowId, execution.runId, attempt, log);

    let info: RayJobInfo | null = null;
    let tail = '';
    const started = Date.now();
    // As in task mode, the step's timeout stops the job just before Temporal times the attempt out.
    const timeoutMs = ctx.info.startToCloseTimeoutMs ?? 0;
    const deadline =
      timeoutMs > ATTEMPT_DEADLINE_MARGIN_MS ? started + timeoutMs - ATTEMPT_DEADLINE_MARGIN_MS : 0;
    for (;;) {
      info = await jobInfo(id);
      if (!info) throw ApplicationFailure.retryable(`Ray job ${id} disappeared`, 'RayJobLost');
      tail = (await logTail(id, info.driver_node_id)) || tail;
      heartbeat({
        submissionId: id,
        status: info.status,
        node: info.driver_node_id ?? null,
        elapsedMs: Date.now() - started,
        logTail: tail,
      });
      if (TERMINAL.has(info.status)) break;
      if (deadline && Date.now() >= deadline) {
        log.warn({ submissionId: id }, 'step timed out; stopping its Ray job');
        await stopJob(id);
        throw ApplicationFailure.retryable(
          `Ray job ${id} did not finish within the step's timeout (${Math.round(timeoutMs / 1000)} s)`,
          'RayJobTimedOut',
        );
      }
      try {
        await Promise.race([
          new Promise((resolve) => setTimeout(resolve, config.statusPollMs)),
          ctx.cancelled,
        ]);
      } catch (err) {
        // Only a cancel asked for, or a workflow that is over, stops the job: a worker shutdown, a
        // timed-out or a stale attempt leaves it for the next attempt to attach to.
        const why = ctx.cancellationDetails;
        const closed = () =>
          (config.workflowClosed ?? assumeWorkflowOpen)(execution.workflowId, execution.runId);
        if (
          err instanceof CancelledFailure &&
          (why?.cancelRequested || (why?.notFound && (await closed())))
        ) {
          log.info({ submissionId: id, reason: err.message }, 'step cancelled; stopping its Ray job');
          await stopJob(id);
        }
        throw err;
      }
    }

    // The tail read alongside the final status may predate the script's last lines.
    tail = (await logTail(id, info.driver_node_id)) || tail;
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
