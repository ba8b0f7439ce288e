/**
 * A small client of the Ray Jobs REST API on the dashboard (`/api/jobs/`),
 * and of the state API's log endpoint for a job driver's log tail. It knows
 * HTTP and the API's shapes, nothing of steps (job-step.ts decides).
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { z } from 'zod';
import { describeZodError } from '../../core/issues';
import { rayAuthHeaders } from '../../stack/ray-auth';

export const JOB_STATUSES = ['PENDING', 'RUNNING', 'STOPPED', 'SUCCEEDED', 'FAILED'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const TERMINAL: ReadonlySet<JobStatus> = new Set(['STOPPED', 'SUCCEEDED', 'FAILED']);

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

export class JobApiError extends Error {
  override name = 'JobApiError';
}

/** Lines asked of the driver's log for its tail (then cut to the configured size). */
const LOG_TAIL_LINES = 200;

/** The last `maxBytes` of a log, cut at a line start when one is near. Pure. */
export function tailOf(log: string, maxBytes: number): string {
  if (log.length <= maxBytes) return log;
  const cut = log.slice(log.length - maxBytes);
  const newline = cut.indexOf('\n');
  return newline >= 0 && newline < cut.length - 1 ? cut.slice(newline + 1) : cut;
}

export interface JobSubmission {
  entrypoint: string;
  submission_id: string;
  runtime_env?: Record<string, unknown>;
  metadata: Record<string, string>;
  [resourceField: string]: unknown;
}

export class RayJobsClient {
  private readonly api: string;

  /** `stopWaitMs`: how long `stop` waits for a stopped job to end. */
  constructor(
    dashboardUrl: string,
    private readonly logTailBytes: number,
    private readonly stopWaitMs: number,
  ) {
    this.api = dashboardUrl.replace(/\/$/, '');
  }

  // node:http rather than fetch: fetch always sends Sec-Fetch-Mode, and the Ray dashboard refuses
  // POSTs that look like browser traffic (HTTP 405).
  private request(method: 'GET' | 'POST', path: string, body?: unknown) {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    return new Promise<{ status: number; text: string }>((resolve, reject) => {
      const req = (this.api.startsWith('https:') ? https : http).request(
        `${this.api}${path}`,
        {
          method,
          timeout: 30_000,
          headers: {
            // Ray's token when the cluster asks for one (stack/ray-auth.ts).
            ...rayAuthHeaders(),
            ...(payload === undefined
              ? {}
              : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) }),
          },
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

  /** The job's info; null when Ray has no job of that id. */
  async jobInfo(id: string): Promise<RayJobInfo | null> {
    const res = await this.request('GET', `/api/jobs/${encodeURIComponent(id)}`);
    if (res.status === 404) return null;
    if (res.status !== 200)
      throw new JobApiError(`GET /api/jobs/${id}: HTTP ${res.status}: ${res.text.slice(0, 500)}`);
    const parsed = jobInfoSchema.safeParse(JSON.parse(res.text));
    if (!parsed.success) {
      throw new JobApiError(`GET /api/jobs/${id}: invalid ${describeZodError(parsed.error)}`);
    }
    return parsed.data;
  }

  /**
   * The end of the job's driver log. Asked first of the driver node's log
   * agent through the state API (only the last lines travel, and it reads the
   * node's own log folder, which the Jobs API's log endpoint misses when nodes
   * have temp dirs of their own); the Jobs API's full log is the fallback.
   */
  async logTail(id: string, driverNode: string | null | undefined): Promise<string> {
    if (driverNode) {
      const query = new URLSearchParams({
        node_id: driverNode,
        filename: `job-driver-${id}.log`,
        lines: String(LOG_TAIL_LINES),
      });
      const res = await this.request('GET', `/api/v0/logs/file?${query}`);
      if (res.status === 200) return tailOf(res.text, this.logTailBytes);
    }
    const res = await this.request('GET', `/api/jobs/${encodeURIComponent(id)}/logs`);
    if (res.status !== 200) return '';
    const parsed = z.object({ logs: z.string() }).safeParse(JSON.parse(res.text));
    return parsed.success ? tailOf(parsed.data.logs, this.logTailBytes) : '';
  }

  /** Asks Ray to stop the job and waits (up to `stopWaitMs`) for it to end. */
  async stop(id: string): Promise<void> {
    const res = await this.request('POST', `/api/jobs/${encodeURIComponent(id)}/stop`);
    if (res.status !== 200 && res.status !== 404)
      throw new JobApiError(`POST /api/jobs/${id}/stop: HTTP ${res.status}: ${res.text.slice(0, 500)}`);
    const deadline = Date.now() + this.stopWaitMs;
    while (Date.now() < deadline) {
      const info = await this.jobInfo(id);
      if (!info || TERMINAL.has(info.status)) return;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }

  /** Submits a job; `accepted: false` with Ray's answer when Ray already has one of that submission id. */
  async submit(
    job: JobSubmission,
  ): Promise<{ accepted: true } | { accepted: false; duplicate: boolean; answer: string }> {
    const res = await this.request('POST', '/api/jobs/', job);
    if (res.status === 200) return { accepted: true };
    return {
      accepted: false,
      duplicate: res.text.includes('Please use a different submission_id'),
      answer: `HTTP ${res.status}: ${res.text.slice(-1000)}`,
    };
  }
}
