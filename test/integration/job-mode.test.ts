/**
 * Job mode: steps that run a script as a Ray job through the Ray Jobs REST
 * API, checked against what Ray itself reports (GET /api/jobs/...).
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { z } from 'zod';
import { jobSubmissionId } from '../../activities/ray/job-step';
import type { PipelineResult } from '../../core/schemas/pipeline-spec';
import { recordFigures } from '../helpers/figures';
import { startTestEnv, uniqueId, waitUntil, type TestEnv } from '../helpers/test-env';
import { rayAuthHeaders } from '../../stack/ray-auth';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-job-'));
const script = path.join(dir, 'job.py');
fs.writeFileSync(
  script,
  `import os, sys, time
mode = sys.argv[1]
if mode == "ok":
    for i in range(1, 51):
        print(f"line {i}", flush=True)
    sys.exit(0)
if mode == "fail":
    print("about to fail", flush=True)
    sys.exit(3)
if mode == "sleep":
    with open(sys.argv[2], "w") as f:
        f.write(str(os.getpid()))
    print("sleeping", flush=True)
    time.sleep(60)
if mode == "slow":
    print("working", flush=True)
    time.sleep(float(sys.argv[3]))
    with open(sys.argv[2], "a") as f:
        f.write("ran\\n")
    print("done", flush=True)
`,
);

const jobSchema = z.object({ submission_id: z.string().nullable(), status: z.string() });

async function rayJob(env: TestEnv, id: string) {
  const res = await fetch(`${env.config.ray.dashboardUrl}/api/jobs/${id}`, { headers: rayAuthHeaders() });
  return res.status === 404 ? null : jobSchema.parse(await res.json());
}

async function rayJobsStartingWith(env: TestEnv, prefix: string) {
  const res = await fetch(`${env.config.ray.dashboardUrl}/api/jobs/`, { headers: rayAuthHeaders() });
  return z
    .array(jobSchema)
    .parse(await res.json())
    .filter((j) => j.submission_id?.startsWith(prefix));
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function jobPipeline(env: TestEnv, entrypoint: string, extra: Record<string, unknown> = {}) {
  const workflowId = uniqueId('job');
  return {
    workflowId,
    submissionId: jobSubmissionId(workflowId, 'j'),
    start: () =>
      env.startPipeline(
        { name: 'job', project: 'drills', steps: [{ id: 'j', job: { entrypoint }, ...extra }] },
        workflowId,
      ),
  };
}

describe('with an in-process worker', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await startTestEnv();
  });
  afterAll(async () => {
    await env?.close();
  });

  test('success: the step result carries the exit code and the log tail', async () => {
    const job = jobPipeline(env, `${env.config.python} ${script} ok`);
    const result = (await (await job.start()).result()) as PipelineResult;
    const step = result.steps.j;
    expect(step).toMatchObject({ status: 'succeeded', submissionId: job.submissionId, attempts: 1 });
    expect(step?.output).toMatchObject({ submissionId: job.submissionId, exitCode: 0 });
    expect(step?.logTail).toMatch(/line 49\nline 50\n$/);
    expect(await rayJob(env, job.submissionId)).toMatchObject({ status: 'SUCCEEDED' });
  });

  test('failure: a non-zero exit is retried as a new job, then fails with the exit code and the log', async () => {
    const job = jobPipeline(env, `${env.config.python} ${script} fail`, { retry: { maximumAttempts: 2 } });
    const handle = await job.start();
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(String((err as WorkflowFailedError).cause?.message)).toMatch(
      new RegExp(`RayJobFailed: Ray job ${job.submissionId}-r2 failed with exit code 3`),
    );
    // The activity's failure carries the log tail in its details.
    const failed = (await handle.fetchHistory()).events?.find((e) => e.activityTaskFailedEventAttributes);
    const payloads =
      failed?.activityTaskFailedEventAttributes?.failure?.applicationFailureInfo?.details?.payloads;
    const details = defaultPayloadConverter.fromPayload<{ exitCode: number; logTail: string }>(payloads![0]!);
    expect(details).toMatchObject({ exitCode: 3, logTail: expect.stringContaining('about to fail') });
    const jobs = await rayJobsStartingWith(env, job.submissionId);
    expect(jobs.map((j) => [j.submission_id, j.status]).sort()).toEqual([
      [job.submissionId, 'FAILED'],
      [`${job.submissionId}-r2`, 'FAILED'],
    ]);
  });

  test('cancel: the workflow cancel stops the Ray job and its process', async () => {
    const pidFile = path.join(dir, `${uniqueId('pid')}.txt`);
    const job = jobPipeline(env, `${env.config.python} ${script} sleep ${pidFile}`);
    const handle = await job.start();
    const pid = await waitUntil(
      'the job to start its script',
      async () =>
        fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8')) || undefined : undefined,
      120_000,
    );
    expect(await rayJob(env, job.submissionId)).toMatchObject({ status: 'RUNNING' });
    const cancelledAt = Date.now();
    await handle.cancel();
    await waitUntil(
      'Ray to report the job stopped',
      async () => ((await rayJob(env, job.submissionId))?.status === 'STOPPED' ? true : undefined),
      30_000,
      100,
    );
    const stoppedMs = Date.now() - cancelledAt;
    await waitUntil('the job’s process to end', async () => (isAlive(pid) ? undefined : true), 30_000, 100);
    const goneMs = Date.now() - cancelledAt;
    recordFigures('job-cancel', { cancelToJobStoppedMs: stoppedMs, cancelToProcessGoneMs: goneMs });
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(stoppedMs).toBeLessThan(10_000);
  });
});

describe('after a worker kill', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await startTestEnv({ worker: false });
  }, 180_000);
  afterAll(async () => {
    await env?.close();
  });

  test('the retried attempt submits the same id, is refused as a duplicate, and attaches: the script runs once', async () => {
    const marker = path.join(dir, `${uniqueId('marker')}.txt`);
    const victim = await env.startWorkerProcess();
    const job = jobPipeline(env, `${env.config.python} ${script} slow ${marker} 8`);
    const handle = await job.start();
    await waitUntil(
      'Ray to run the job',
      async () => ((await rayJob(env, job.submissionId))?.status === 'RUNNING' ? true : undefined),
      120_000,
    );
    await victim.kill9();
    const survivor = await env.startWorkerProcess();
    const result = (await handle.result()) as PipelineResult;
    expect(result.steps.j).toMatchObject({ status: 'succeeded', submissionId: job.submissionId });
    expect(result.steps.j?.attempts).toBeGreaterThanOrEqual(2);
    expect(fs.readFileSync(marker, 'utf8')).toBe('ran\n');
    expect(await rayJobsStartingWith(env, job.submissionId)).toEqual([
      { submission_id: job.submissionId, status: 'SUCCEEDED' },
    ]);
    expect(survivor.output()).toMatch(/"msg":"attached to Ray job"/);
  });
});
