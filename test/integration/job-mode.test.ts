/**
 * Job mode: steps that run a script as a Ray job through the Ray Jobs REST
 * API, checked against what Ray itself reports (GET /api/jobs/...). Job mode
 * is opt-in: off without a policy, and with one only listed entrypoints run,
 * with an environment that holds nothing of the launcher's own.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { z } from 'zod';
import { jobSubmissionId } from '../../activities/ray/job-step';
import type { PipelineResult } from '../../core/schemas/pipeline-spec';
import { loadStackConfig, rayProcessEnv } from '../../stack/config';
import { INHERITED_ENV_KEYS } from '../../stack/processes';
import { recordFigures } from '../helpers/figures';
import { startTestEnv, uniqueId, waitUntil, type TestEnv } from '../helpers/test-env';
import { failureCause } from '../helpers/workflow-failure';
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
if mode == "env":
    # Names only: values (secrets, if any leaked) must not reach the log tail and Temporal's history.
    print("ENV " + " ".join(sorted(os.environ)), flush=True)
`,
);

const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** The operator's policy for these tests: this script, in its known modes, and nothing else. */
function jobPolicyEnv(python: string): NodeJS.ProcessEnv {
  const prefix = `${escapeRegExp(python)} ${escapeRegExp(script)}`;
  return {
    PANTHEON_JOB_ENTRYPOINTS: JSON.stringify([
      `${prefix} (ok|fail|env)`,
      `${prefix} (sleep|slow) [\\w./-]+( [0-9]+)?`,
    ]),
  };
}
const PYTHON = loadWorkerConfigPython();
function loadWorkerConfigPython(): string {
  return process.env.PANTHEON_PYTHON ?? path.resolve(__dirname, '..', '..', '.venv', 'bin', 'python');
}

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

describe('without a job policy (the default)', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await startTestEnv({ env: { PANTHEON_JOB_ENTRYPOINTS: undefined } });
  });
  afterAll(async () => {
    await env?.close();
  });

  test('a job step is refused before anything runs, saying how to enable job mode', async () => {
    expect(env.config.jobPolicy).toBeNull();
    const job = jobPipeline(env, `${env.config.python} ${script} ok`);
    const cause = await failureCause(await job.start());
    expect(cause.type).toBe('InvalidPipelineSpec');
    expect(cause.nonRetryable).toBe(true);
    expect(cause.message).toMatch(/steps\[0\]\.job: job mode is off: .*PANTHEON_JOB_ENTRYPOINTS/);
    expect(await rayJob(env, job.submissionId)).toBeNull();
  });
});

describe('with an in-process worker', () => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await startTestEnv({ env: jobPolicyEnv(PYTHON) });
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

  test('an entrypoint the policy does not list is refused, naming the field; nothing reaches Ray', async () => {
    for (const entrypoint of [
      'env',
      `${env.config.python} ${script} ok; env`,
      `${env.config.python} -c "print(1)"`,
    ]) {
      const job = jobPipeline(env, entrypoint);
      const cause = await failureCause(await job.start());
      expect(cause.type).toBe('InvalidPipelineSpec');
      expect(cause.message).toMatch(
        /steps\[0\]\.job\.entrypoint: entrypoint .* matches none of the entrypoints allowed/,
      );
      expect(await rayJob(env, job.submissionId)).toBeNull();
    }
  });

  test('a runtime_env field the policy does not allow is refused by name', async () => {
    const job = jobPipeline(env, `${env.config.python} ${script} ok`);
    const handle = await env.startPipeline(
      {
        name: 'job',
        project: 'drills',
        steps: [
          { id: 'j', job: { entrypoint: `${env.config.python} ${script} ok`, runtimeEnv: { pip: ['x'] } } },
        ],
      },
      job.workflowId,
    );
    const err = await handle.result().catch((e: unknown) => e);
    expect(String((err as WorkflowFailedError).cause?.message)).toMatch(
      /steps\[0\]\.job\.runtimeEnv\.pip: runtime_env field "pip" is not allowed/,
    );
  });

  test("a job's environment holds the step's env_vars and nothing set only in the launcher's environment", async () => {
    const workflowId = uniqueId('job');
    const handle = await env.startPipeline(
      {
        name: 'job',
        project: 'drills',
        steps: [
          {
            id: 'j',
            job: {
              entrypoint: `${env.config.python} ${script} env`,
              runtimeEnv: { env_vars: { STEP_ONLY_VAR: 'x' } },
            },
          },
        ],
      },
      workflowId,
    );
    const result = (await handle.result()) as PipelineResult;
    const names = new Set(/^ENV (.*)$/m.exec(result.steps.j?.logTail ?? '')?.[1]?.split(' ') ?? []);
    expect(names.has('STEP_ONLY_VAR')).toBe(true);
    expect(names.has('PATH')).toBe(true);
    // The launcher of the stack and of this test share an environment (the test setup starts the
    // stack, or the shell that ran stack:up did): none of its variables may reach the job, except
    // those the stack passes by name and Ray's own.
    const passed = new Set([
      ...INHERITED_ENV_KEYS,
      ...Object.keys(rayProcessEnv(loadStackConfig())),
      // Set afresh by the shell that runs the entrypoint, and by Ray for every job driver.
      ...['SHLVL', 'PWD', 'OLDPWD', '_', 'PYTHONUNBUFFERED'],
    ]);
    const launcherOnly = Object.keys(process.env).filter((k) => !passed.has(k) && !k.startsWith('RAY_'));
    expect(launcherOnly).toContain('PANTHEON_LAUNCHER_ONLY_PROBE');
    expect(launcherOnly.filter((k) => names.has(k))).toEqual([]);
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
    env = await startTestEnv({ worker: false, env: jobPolicyEnv(PYTHON) });
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
