/**
 * `npm run bench [-- --quick]`: Pantheon against its baselines, on the local
 * stack, in one stack lifetime. See bench/README.md for what each case
 * measures and how to read the table.
 *
 * The stack is the one `scripts/stack.ts` describes (ports and state folder
 * from the environment, stack/config.ts); it is started if it is
 * not up, and then stopped again at the end. Results go to bench/results/
 * (one JSON and one Markdown file per run); the last line printed is one JSON
 * object with the headline figures (a contract for tools outside the project).
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { Client, Connection } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { bundleWorkflowCode } from '@temporalio/worker';
import { buildWorkflowBundle } from '../stack/workflow-bundle';
import { waitFor } from '../stack/processes';
import { loadStackConfig, localRayClientEnv, REPO_ROOT, type StackConfig } from '../stack/config';
import { stackDown, stackIsUp, stackUp, startDispatcherHost } from '../stack/local-stack';
import { listLocalNodes } from '../stack/ray-nodes';
import { listRayTasksNamed, type RayTaskRecord } from '../stack/ray-cluster-state';
import { roundTripSegments, SEGMENTS, type Segment } from '../core/round-trip-profile';
import type { PipelineResult, PipelineSpecInput } from '../core/schemas/pipeline-spec';
import { PIPELINE_TASK_QUEUE } from '../core/task-queues';
import { BARE_WORKFLOW_QUEUE } from './bare/workflows';
import { runToEnd, startChild, type BenchChild } from './lib/children';
import { cpuSnapshot, machineInfo } from './lib/machine';
import { renderMarkdown } from './lib/report';
import { httpJson } from './lib/http-json';
import { rayAuthHeaders } from '../stack/ray-auth';
import { childPids, PeakMemorySampler, readMemory, type MemoryTarget } from './lib/rss';
import { median, round, summarize, type LatencySummary } from './lib/stats';
import {
  PROFILES,
  summarizeResult,
  type BenchProfile,
  type BenchResult,
  type FanoutFigures,
} from './lib/result';

const log = (msg: string) => process.stderr.write(`[bench] ${msg}\n`);

const JOB_POLL_MS = 50;
const ECHO_TASK = 'pantheon_tasks.testkit:echo';
const SLEEP_TASK = 'pantheon_tasks.testkit:sleep';

/**
 * The cases `--cases` may name (all of them without it): a subset reruns on a quiet machine what a
 * full run measured under load, or what a change touched. `map` needs `raw` for its baseline.
 */
const CASES = [
  'overhead',
  'jobs',
  'raw',
  'fanout',
  'sleep-fanout',
  'map',
  'big-pipeline',
  'large-output',
  'multi-worker',
  'round-trip',
  'memory',
  'autoscaler-sim',
  'autoscaler',
] as const;
type BenchCase = (typeof CASES)[number];

function parseArgs(argv: string[]): {
  profile: BenchProfile;
  outDir: string;
  withAutoscaler: boolean;
  cases: ReadonlySet<BenchCase>;
} {
  const quick = argv.includes('--quick');
  const withAutoscaler = argv.includes('--autoscaler');
  const outIndex = argv.indexOf('--out');
  const outDir =
    outIndex >= 0 && argv[outIndex + 1]
      ? path.resolve(argv[outIndex + 1]!)
      : path.join(REPO_ROOT, 'bench', 'results');
  const withValue = ['--out', '--fanout-steps', '--cases'];
  const known = ['--quick', '--autoscaler', ...withValue];
  const unknown = argv.filter(
    (a, i) => a.startsWith('--') && !known.includes(a) && !withValue.includes(argv[i - 1] ?? ''),
  );
  if (unknown.length > 0)
    throw new Error(
      `unknown option ${unknown.join(' ')} (options: --quick, --autoscaler, --fanout-steps <n>, --cases <list>, --out <dir>)`,
    );
  const profile = { ...PROFILES[quick ? 'quick' : 'full'] };
  const stepsIndex = argv.indexOf('--fanout-steps');
  if (stepsIndex >= 0) {
    const steps = Number(argv[stepsIndex + 1]);
    if (!Number.isInteger(steps) || steps < 1) throw new Error('--fanout-steps takes a positive integer');
    profile.fanoutSteps = steps;
  }
  const casesIndex = argv.indexOf('--cases');
  let cases: ReadonlySet<BenchCase> = new Set(CASES);
  if (casesIndex >= 0) {
    const named = (argv[casesIndex + 1] ?? '').split(',').filter(Boolean);
    const unknownCases = named.filter((c) => !(CASES as readonly string[]).includes(c));
    if (named.length === 0 || unknownCases.length > 0)
      throw new Error(`--cases takes a comma-separated list of ${CASES.join(', ')}`);
    cases = new Set(named as BenchCase[]);
    if (cases.has('map')) (cases as Set<BenchCase>).add('raw');
  }
  return { profile, outDir, withAutoscaler, cases };
}

const elapsed = async (operation: () => Promise<unknown>): Promise<number> => {
  const started = performance.now();
  await operation();
  return performance.now() - started;
};

const uniqueId = (prefix: string) => `${prefix}-${crypto.randomBytes(5).toString('hex')}`;

function fanoutFigures(steps: number, makespansMs: number[]): FanoutFigures {
  const makespanS = median(makespansMs) / 1000;
  return {
    steps,
    repeats: makespansMs.length,
    makespansS: makespansMs.map((ms) => round(ms / 1000, 3)),
    makespanS: round(makespanS, 3),
    stepsPerS: round(steps / makespanS, 1),
  };
}

/** The node process of the Pantheon worker, as `npm run worker` runs it (see README: "worker launch"). */
function pantheonWorkerCommand(): { command: string; args: string[]; launch: string } {
  return {
    command: process.execPath,
    args: ['--require', require.resolve('tsx/cjs'), path.join(REPO_ROOT, 'workers', 'main.ts')],
    launch: 'node --require tsx/cjs workers/main.ts',
  };
}

class Bench {
  private client!: Client;
  private connection!: Connection;
  private pantheonWorker?: BenchChild;
  private bareWorker?: BenchChild;
  private memoryTargets: MemoryTarget[] = [];
  private pantheonBundle?: string;

  constructor(
    private readonly config: StackConfig,
    private readonly profile: BenchProfile,
    private readonly result: BenchResult,
  ) {}

  private workerEnv(): NodeJS.ProcessEnv {
    const { config } = this;
    return {
      ...process.env,
      TEMPORAL_ADDRESS: config.temporal.address,
      RAY_ADDRESS: config.ray.address,
      RAY_DASHBOARD_URL: config.ray.dashboardUrl,
      ...localRayClientEnv(config),
      QDRANT_URL: config.qdrant.url,
      ...(this.pantheonBundle && { PANTHEON_WORKFLOW_BUNDLE: this.pantheonBundle }),
    };
  }

  async startWorkers(pantheonBundle: string, bareBundle: string): Promise<void> {
    const { config } = this;
    this.pantheonBundle = pantheonBundle;
    const env = this.workerEnv();
    const worker = pantheonWorkerCommand();
    this.result.worker.launch = worker.launch;
    const started = performance.now();
    [this.pantheonWorker, this.bareWorker] = await Promise.all([
      startChild(worker.command, worker.args, {
        cwd: REPO_ROOT,
        env: { ...env, PANTHEON_WORKFLOW_BUNDLE: pantheonBundle, LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' },
        logFile: path.join(config.logDir, 'bench-pantheon-worker.log'),
        readyLine: '"msg":"worker running"',
        timeoutMs: 180_000,
      }),
      startChild(
        process.execPath,
        ['--require', require.resolve('tsx/cjs'), path.join(__dirname, 'bare', 'worker.ts')],
        {
          cwd: REPO_ROOT,
          env: { ...env, BENCH_BARE_BUNDLE: bareBundle },
          logFile: path.join(config.logDir, 'bench-bare-worker.log'),
          readyLine: 'ready',
          timeoutMs: 180_000,
        },
      ),
    ]);
    log(`workers ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    this.connection = await Connection.connect({ address: config.temporal.address });
    this.client = new Client({
      connection: this.connection,
      namespace: process.env.TEMPORAL_NAMESPACE ?? 'default',
    });
  }

  async stopWorkers(): Promise<void> {
    await this.connection?.close().catch(() => undefined);
    await Promise.all([this.pantheonWorker?.stop(), this.bareWorker?.stop()]);
  }

  /** What memory is read from: the worker, its bridge, the bare worker, and each stack service's process group. */
  resolveMemoryTargets(): void {
    const { config } = this;
    const targets: MemoryTarget[] = [];
    const workerPid = this.pantheonWorker!.pid;
    targets.push({ name: 'worker', kind: 'process', pid: workerPid });
    const bridge = childPids(workerPid, 'pantheon_runtime.bridge')[0];
    if (bridge !== undefined) targets.push({ name: 'bridge', kind: 'process', pid: bridge });
    targets.push({ name: 'bareWorker', kind: 'process', pid: this.bareWorker!.pid });
    for (const service of ['temporal', 'ray-head', 'qdrant']) {
      try {
        const pid = Number(fs.readFileSync(path.join(config.pidDir, `${service}.pid`), 'utf8'));
        if (pid > 0) targets.push({ name: service, kind: 'group', pid });
      } catch {
        /* not running */
      }
    }
    for (const node of listLocalNodes(config))
      targets.push({ name: `ray-node:${node.name}`, kind: 'group', pid: node.pid });
    this.memoryTargets = targets;
  }

  // ---- the ways one unit of work is run -------------------------------------------------------

  /** `work` unless the worker that has to do it exits first (then its failure, with where its log is). */
  private whileAlive<T>(worker: BenchChild | undefined, work: Promise<T>): Promise<T> {
    if (!worker) return work;
    const died = worker.exited.then((how): never => {
      throw new Error(`the worker process ${how}; see ${path.relative(REPO_ROOT, worker.logFile)}`);
    });
    return Promise.race([work, died]);
  }

  private async runPipeline(
    spec: PipelineSpecInput,
    timeout: Duration,
    workflowId = uniqueId(`bench-${spec.name}`),
  ): Promise<PipelineResult> {
    const execution = this.client.workflow.execute('pipeline', {
      taskQueue: PIPELINE_TASK_QUEUE,
      workflowId,
      args: [spec],
      workflowExecutionTimeout: timeout,
    });
    const result = (await this.whileAlive(this.pantheonWorker, execution).catch(async (err: unknown) => {
      // A pipeline left running would be picked up by the next worker on this stack.
      await this.client.workflow
        .getHandle(workflowId)
        .terminate('benchmark case failed')
        .catch(() => undefined);
      throw err;
    })) as PipelineResult;
    if (result.status !== 'succeeded') throw new Error(`pipeline ${spec.name} ended ${result.status}`);
    return result;
  }

  private onePipelineStep(): Promise<PipelineResult> {
    return this.runPipeline(
      { name: 'bench-step', project: 'bench', steps: [{ id: 'echo', task: ECHO_TASK, args: ['x'] }] },
      '2 minutes',
    );
  }

  private oneBareStep(): Promise<unknown> {
    return this.whileAlive(
      this.bareWorker,
      this.client.workflow.execute('bareStep', {
        taskQueue: BARE_WORKFLOW_QUEUE,
        workflowId: uniqueId('bench-bare-step'),
        args: ['x'],
        workflowExecutionTimeout: '2 minutes',
      }),
    );
  }

  private pipelineFanout(steps: number, sleepSeconds = 0, workflowId?: string): Promise<PipelineResult> {
    return this.runPipeline(
      {
        name: sleepSeconds > 0 ? 'bench-sleep-fanout' : 'bench-fanout',
        project: 'bench',
        failurePolicy: 'continue',
        steps: Array.from({ length: steps }, (_, i) =>
          sleepSeconds > 0
            ? { id: `s${i}`, task: SLEEP_TASK, args: [sleepSeconds, i] }
            : { id: `s${i}`, task: ECHO_TASK, args: [i] },
        ),
      },
      '15 minutes',
      workflowId,
    );
  }

  /**
   * Issue #14's multi-worker case: the sleep fan-out with this worker alone, then with two more
   * worker processes beside it. From Ray's own task records, the longest any step's task waited in
   * Ray between its submission and its start (which includes starting a Ray worker process when
   * none is idle: an upper bound on the wait for resources).
   */
  async multiWorker(
    steps: number,
    sleepSeconds: number,
  ): Promise<{
    workers: number;
    steps: number;
    oneWorkerStepsPerS: number;
    stepsPerS: number;
    rayQueueMaxMs: number;
  }> {
    const oneWorkerMs = await elapsed(() => this.pipelineFanout(steps, sleepSeconds));
    const worker = pantheonWorkerCommand();
    const extra = await Promise.all(
      [1, 2].map((n) =>
        startChild(worker.command, worker.args, {
          cwd: REPO_ROOT,
          env: { ...this.workerEnv(), LOG_LEVEL: process.env.LOG_LEVEL ?? 'info' },
          logFile: path.join(this.config.logDir, `bench-extra-worker-${n}.log`),
          readyLine: '"msg":"worker running"',
          timeoutMs: 180_000,
        }),
      ),
    );
    try {
      const workflowId = uniqueId('bench-multi-worker');
      const threeWorkersMs = await elapsed(() => this.pipelineFanout(steps, sleepSeconds, workflowId));
      // Ray reports task events about once a second: wait until every step's start is in.
      const tasks = await waitFor(
        'Ray to record the start of every step',
        async (): Promise<RayTaskRecord[] | undefined> => {
          const found = (
            await Promise.all(
              Array.from({ length: steps }, (_, i) =>
                listRayTasksNamed(
                  this.config.ray.dashboardUrl,
                  `${workflowId}/s${i}`,
                  rayAuthHeaders(localRayClientEnv(this.config)),
                ),
              ),
            )
          ).flat();
          return found.length >= steps && found.every((t) => t.startedAtMs !== null) ? found : undefined;
        },
        60_000,
        1_000,
      );
      const waits = tasks
        .filter((t) => t.createdAtMs !== null && t.startedAtMs !== null)
        .map((t) => t.startedAtMs! - t.createdAtMs!);
      return {
        workers: 3,
        steps,
        oneWorkerStepsPerS: round(steps / (oneWorkerMs / 1000), 2),
        stepsPerS: round(steps / (threeWorkersMs / 1000), 2),
        rayQueueMaxMs: waits.length > 0 ? Math.max(...waits) : Number.NaN,
      };
    } finally {
      await Promise.all(extra.map((child) => child.stop()));
    }
  }

  /**
   * Issue #14's round-trip profile: one-step pipelines one after another, each cut into segments
   * from its history, Ray's record of its task and the client's clock (bench/lib/round-trip.ts).
   */
  async roundTrip(samples: number): Promise<Record<Segment, LatencySummary>> {
    const runs: Record<Segment, number>[] = [];
    for (let i = 0; i < samples + 3; i++) {
      const workflowId = uniqueId('bench-round-trip');
      const clientStartMs = Date.now();
      await this.runPipeline(
        { name: 'bench-step', project: 'bench', steps: [{ id: 'echo', task: ECHO_TASK, args: ['x'] }] },
        '2 minutes',
        workflowId,
      );
      const clientEndMs = Date.now();
      if (i < 3) continue; // warm-up
      const { events } = await this.client.workflow.getHandle(workflowId).fetchHistory();
      const task = await waitFor(
        'Ray to record the step’s task',
        async () =>
          (
            await listRayTasksNamed(
              this.config.ray.dashboardUrl,
              `${workflowId}/echo`,
              rayAuthHeaders(localRayClientEnv(this.config)),
            )
          ).find((t) => t.createdAtMs !== null && t.startedAtMs !== null && t.endedAtMs !== null),
        30_000,
        500,
      );
      const segments = roundTripSegments({
        clientStartMs,
        clientEndMs,
        events: events ?? [],
        activityId: 'step:echo',
        ray: { createdAtMs: task.createdAtMs!, startedAtMs: task.startedAtMs!, endedAtMs: task.endedAtMs! },
      });
      if (segments) runs.push(segments);
    }
    if (runs.length === 0) throw new Error('no run could be cut into segments');
    return Object.fromEntries(SEGMENTS.map((name) => [name, summarize(runs.map((r) => r[name]))])) as Record<
      Segment,
      LatencySummary
    >;
  }

  private async bareFanout(steps: number, sleepSeconds = 0): Promise<void> {
    const done = await this.whileAlive(
      this.bareWorker,
      this.client.workflow.execute('bareFanout', {
        taskQueue: BARE_WORKFLOW_QUEUE,
        workflowId: uniqueId('bench-bare-fanout'),
        args: [steps, Math.round(sleepSeconds * 1000)],
        workflowExecutionTimeout: '15 minutes',
      }),
    );
    if (done !== steps) throw new Error(`bare fan-out finished ${String(done)} of ${steps} activities`);
  }

  private async rayJob(): Promise<void> {
    const { dashboardUrl } = this.config.ray;
    const rayAuth = rayAuthHeaders(localRayClientEnv(this.config));
    const submissionId = uniqueId('bench-job');
    const python = path.join(this.config.venvBin, 'python');
    const body = {
      submission_id: submissionId,
      // The step's no-op, run by the job's own driver process: the least a job per step can do.
      entrypoint: `${python} -c "from pantheon_tasks.testkit import echo; echo('x')"`,
    };
    // A head whose job agent is not ready answers "No available agent": asked again, as a client would.
    await waitFor(
      'the Jobs API to accept a job',
      async () => {
        const res = await httpJson('POST', `${dashboardUrl}/api/jobs/`, body, undefined, rayAuth);
        if (res.status === 200) return true;
        throw new Error(`job submission answered ${res.status}: ${res.text.slice(0, 300)}`);
      },
      60_000,
      JOB_POLL_MS,
    );
    const info = await waitFor(
      `Ray job ${submissionId} to finish`,
      async () => {
        const res = await httpJson(
          'GET',
          `${dashboardUrl}/api/jobs/${submissionId}`,
          undefined,
          undefined,
          rayAuth,
        );
        const job = res.json as { status?: string; message?: string } | undefined;
        return job?.status && ['SUCCEEDED', 'FAILED', 'STOPPED'].includes(job.status) ? job : undefined;
      },
      120_000,
      JOB_POLL_MS,
    );
    if (info.status !== 'SUCCEEDED')
      throw new Error(`Ray job ${submissionId} ${info.status}: ${info.message}`);
  }

  // ---- cases ----------------------------------------------------------------------------------

  /** One-step pipelines and bare one-activity workflows, interleaved so that load drift hits both alike. */
  async stepOverhead(): Promise<{ pipeline: LatencySummary; bareActivity: LatencySummary }> {
    const { overheadWarmup, overheadSamples } = this.profile;
    for (let i = 0; i < overheadWarmup; i++) {
      await this.onePipelineStep();
      await this.oneBareStep();
    }
    this.result.memory = {
      idle: readMemory(this.memoryTargets),
      underFanout: {},
      bareWorker: { idle: 0, underFanout: 0 },
    };
    const pipeline: number[] = [];
    const bare: number[] = [];
    for (let i = 0; i < overheadSamples; i++) {
      pipeline.push(await elapsed(() => this.onePipelineStep()));
      bare.push(await elapsed(() => this.oneBareStep()));
    }
    return { pipeline: summarize(pipeline), bareActivity: summarize(bare) };
  }

  async jobPerStep(): Promise<LatencySummary> {
    for (let i = 0; i < this.profile.jobWarmup; i++) await this.rayJob();
    const samples: number[] = [];
    for (let i = 0; i < this.profile.jobSamples; i++) samples.push(await elapsed(() => this.rayJob()));
    return summarize(samples);
  }

  async rawRay(): Promise<{
    latency: LatencySummary;
    fanout: FanoutFigures;
    sleepFanout: FanoutFigures;
    items: FanoutFigures;
    rayVersion: string;
  }> {
    const p = this.profile;
    const out = await runToEnd(
      path.join(this.config.venvBin, 'python'),
      [
        path.join(__dirname, 'ray_baseline.py'),
        '--address',
        this.config.ray.address,
        '--warmup',
        String(p.rayWarmup),
        '--samples',
        String(p.raySamples),
        '--fanout',
        String(p.fanoutSteps),
        '--sleep-fanout',
        String(p.sleepFanoutSteps),
        '--sleep',
        String(p.sleepSeconds),
        '--repeats',
        String(p.fanoutRepeats),
        '--items',
        String(p.mapItems),
      ],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, RAY_ADDRESS: this.config.ray.address, ...localRayClientEnv(this.config) },
        timeoutMs: 600_000,
      },
    );
    const raw = JSON.parse(out.trim().split('\n').pop()!) as {
      rayVersion: string;
      latencyMs: LatencySummary;
      fanout: { makespansS: number[] };
      sleepFanout: { makespansS: number[] };
      items: { makespanS: number };
    };
    const toFigures = (steps: number, makespansS: number[]) =>
      fanoutFigures(
        steps,
        makespansS.map((s) => s * 1000),
      );
    const latency = raw.latencyMs;
    return {
      latency: {
        ...latency,
        p50: round(latency.p50, 2),
        p95: round(latency.p95, 2),
        p99: round(latency.p99, 2),
        mean: round(latency.mean, 2),
      },
      fanout: toFigures(p.fanoutSteps, raw.fanout.makespansS),
      sleepFanout: toFigures(p.sleepFanoutSteps, raw.sleepFanout.makespansS),
      items: toFigures(p.mapItems, [raw.items.makespanS]),
      rayVersion: raw.rayVersion,
    };
  }

  /** A map step of `items` no-op items (after a small one that starts Ray's workers), end to end. */
  async mapStep(items: number): Promise<{ map: FanoutFigures; mapStepRunningS: number }> {
    const mapOf = (n: number) =>
      this.runPipeline(
        {
          name: 'bench-map',
          project: 'bench',
          steps: [
            { id: 'items', task: 'pantheon_tasks.testkit:numbers', args: [n] },
            { id: 'map', task: ECHO_TASK, map: { over: { $step: 'items' } } },
          ],
        },
        '60 minutes',
      );
    await mapOf(1000);
    let result: PipelineResult | undefined;
    const ms = await elapsed(async () => (result = await mapOf(items)));
    return {
      map: fanoutFigures(items, [ms]),
      mapStepRunningS: round((result!.steps.map!.runningMs ?? 0) / 1000, 3),
    };
  }

  /** A pipeline of `steps` independent echo steps that continues as new every `stepsPerRun` steps. */
  async bigPipeline(
    steps: number,
    stepsPerRun: number,
  ): Promise<{ steps: number; stepsPerRun: number; runs: number; makespanS: number; stepsPerS: number }> {
    const workflowId = uniqueId('bench-big');
    const execution = this.client.workflow.execute('pipeline', {
      taskQueue: PIPELINE_TASK_QUEUE,
      workflowId,
      args: [
        {
          name: 'bench-big',
          project: 'bench',
          continueAsNewAfterSteps: stepsPerRun,
          steps: Array.from({ length: steps }, (_, i) => ({ id: `s${i}`, task: ECHO_TASK, args: [i] })),
        },
      ],
      workflowExecutionTimeout: '2 hours',
    });
    let result: PipelineResult | undefined;
    const ms = await elapsed(
      async () => (result = (await this.whileAlive(this.pantheonWorker, execution)) as PipelineResult),
    );
    const succeeded =
      result!.stepCounts?.succeeded ??
      Object.values(result!.steps).filter((s) => s.status === 'succeeded').length;
    if (result!.status !== 'succeeded' || succeeded !== steps)
      throw new Error(
        `the big pipeline ended ${result!.status} with ${succeeded} of ${steps} steps succeeded`,
      );
    let runs = 0;
    for await (const _ of this.client.workflow.list({ query: `WorkflowId = '${workflowId}'` })) runs++;
    return {
      steps,
      stepsPerRun,
      runs,
      makespanS: round(ms / 1000, 3),
      stepsPerS: round(steps / (ms / 1000), 1),
    };
  }

  /** A step's output of `mb` MB handed on to the next step (by reference), which measures it. */
  async largeOutput(mb: number): Promise<{ mb: number; pipelineS: number; handOffS: number }> {
    const bytes = mb * 1024 * 1024;
    let result: PipelineResult | undefined;
    const ms = await elapsed(
      async () =>
        (result = await this.runPipeline(
          {
            name: 'bench-large-output',
            project: 'bench',
            steps: [
              { id: 'big', task: 'pantheon_tasks.testkit:text', args: [bytes] },
              { id: 'size', task: 'pantheon_tasks.testkit:measure', args: [{ $step: 'big' }] },
            ],
          },
          '10 minutes',
        )),
    );
    if (result!.steps.size!.output !== bytes + 2)
      throw new Error(
        `the next step measured ${String(result!.steps.size!.output)} characters, not ${bytes + 2}`,
      );
    const handOffMs = result!.steps.size!.finishedAtMs! - result!.steps.big!.finishedAtMs!;
    return { mb, pipelineS: round(ms / 1000, 3), handOffS: round(handOffMs / 1000, 3) };
  }

  /** The pipeline fan-out and the bare fan-out, repeated and interleaved; the worker's memory is sampled meanwhile. */
  async fanouts(
    sleepSeconds: number,
    steps: number,
  ): Promise<{ pipeline: FanoutFigures; bareActivity: FanoutFigures }> {
    await this.pipelineFanout(this.profile.fanoutWarmupSteps, sleepSeconds);
    await this.bareFanout(this.profile.fanoutWarmupSteps, sleepSeconds);
    const pipeline: number[] = [];
    const bare: number[] = [];
    for (let r = 0; r < this.profile.fanoutRepeats; r++) {
      const sampler = sleepSeconds === 0 ? new PeakMemorySampler(this.memoryTargets) : undefined;
      pipeline.push(await elapsed(() => this.pipelineFanout(steps, sleepSeconds)));
      const peaks = sampler?.stop();
      const bareSampler =
        sleepSeconds === 0
          ? new PeakMemorySampler(this.memoryTargets.filter((t) => t.name === 'bareWorker'))
          : undefined;
      bare.push(await elapsed(() => this.bareFanout(steps, sleepSeconds)));
      const barePeak = bareSampler?.stop();
      if (peaks && this.result.memory) {
        for (const [name, value] of Object.entries(peaks)) {
          const before = this.result.memory.underFanout[name];
          if (!before || value.rssMb > before.rssMb) this.result.memory.underFanout[name] = value;
        }
        this.result.memory.bareWorker.underFanout = Math.max(
          this.result.memory.bareWorker.underFanout,
          barePeak?.bareWorker?.rssMb ?? 0,
        );
      }
    }
    return { pipeline: fanoutFigures(steps, pipeline), bareActivity: fanoutFigures(steps, bare) };
  }
}

/** Agent memory (bench/memory.ts) against the stack's memory server. */
async function agentMemoryCase(config: StackConfig, profile: BenchProfile): Promise<Record<string, unknown>> {
  const { runMemoryBenchmark } = await import('./memory');
  const pidFile = path.join(config.pidDir, 'qdrant.pid');
  const serverPid = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8').trim()) : undefined;
  const result = await runMemoryBenchmark({
    url: config.qdrant.url,
    points: profile.memoryPoints,
    storage: 'the stack memory server (qdrant-edge)',
    serverPid,
  });
  return { ...result };
}

/** The autoscaling policy in simulation (bench/autoscaler-sim.ts prints one JSON document). */
async function autoscalerSimCase(): Promise<Record<string, unknown>> {
  const out = await runToEnd(
    process.execPath,
    ['--require', require.resolve('tsx/cjs'), path.join(__dirname, 'autoscaler-sim.ts')],
    {
      cwd: REPO_ROOT,
      env: process.env,
      timeoutMs: 300_000,
    },
  );
  return JSON.parse(out) as Record<string, unknown>;
}

/**
 * The live autoscaler benchmark (bench/autoscaler.ts, issue 5), when it
 * exists: loaded dynamically so that this runner works without it. It starts
 * and stops real Ray nodes of a node group of its own and runs a bursty load
 * twice (autoscaled and static), which takes minutes: a full run does it, a
 * quick run only with --autoscaler.
 */
async function autoscalerCase(
  config: StackConfig,
  profile: BenchProfile,
): Promise<Record<string, unknown> | { notAvailable: string }> {
  const file = path.join(__dirname, 'autoscaler.ts');
  if (!fs.existsSync(file)) return { notAvailable: 'bench/autoscaler.ts does not exist yet' };
  const mod = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  const exported = (name: string) =>
    mod[name] ?? (mod.default as Record<string, unknown> | undefined)?.[name];
  const run = (exported('runAutoscalerBench') ?? exported('runAutoscalerBenchmark')) as
    ((options: { stack: StackConfig; quick: boolean }) => Promise<Record<string, unknown>>) | undefined;
  if (typeof run !== 'function')
    return { notAvailable: 'bench/autoscaler.ts does not export runAutoscalerBench(options)' };
  return run({ stack: config, quick: profile.name === 'quick' });
}

/** The dispatcher host's warning that the dispatcher predates it (its steps then start a new worker process each). */
function dispatcherHostWarning(config: StackConfig): string | undefined {
  try {
    const logText = fs.readFileSync(path.join(config.logDir, 'dispatcher-host.log'), 'utf8');
    return logText.split('\n').find((line) => line.startsWith('warning: the dispatcher already existed'));
  } catch {
    return undefined;
  }
}

async function buildBareBundle(outFile: string): Promise<string> {
  const quiet = () => undefined;
  const { code } = await bundleWorkflowCode({
    workflowsPath: path.join(__dirname, 'bare', 'workflows.ts'),
    logger: { trace: quiet, debug: quiet, info: quiet, log: quiet, warn: console.warn, error: console.error },
  });
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, code);
  return outFile;
}

async function main(): Promise<void> {
  const { profile, outDir, withAutoscaler, cases } = parseArgs(process.argv.slice(2));
  const config = loadStackConfig();
  const startedAt = new Date();
  const cpuStart = cpuSnapshot();
  const machine = machineInfo(config.venvBin);
  const startedStack = !stackIsUp(config);
  const result: BenchResult = {
    version: 1,
    startedAt: startedAt.toISOString(),
    finishedAt: '',
    durationS: 0,
    profile,
    machine,
    load: { loadAvg1Start: cpuStart.loadAvg1, loadAvg1End: 0, cpuBusyShare: 0 },
    stack: {
      startedByBench: startedStack,
      stateDir: config.stateDir,
      temporal: config.temporal.address,
      ray: config.ray.address,
      rayNodes: 0,
      rayCpus: 0,
    },
    worker: { launch: '' },
    notes: [
      'Warm-up excluded: every case runs untimed warm-up rounds first (see profile); the figures are from the timed rounds only.',
      'Latencies are end to end, from the client starting the workflow (or submitting the Ray job) to its result; p50/p95/p99 are nearest-rank percentiles.',
      `Fan-out figures are ${profile.fanoutRepeats > 1 ? `medians over ${profile.fanoutRepeats} repeats` : `from one timed run of each (after a ${profile.fanoutWarmupSteps}-step warm-up)`}; the raw Ray figures are timed inside Python.`,
    ],
    errors: {},
    summary: {},
  };
  if (profile.name === 'quick')
    result.notes.push(
      `Quick mode: fewer samples (${profile.overheadSamples} one-step runs, ${profile.jobSamples} jobs, ${profile.fanoutRepeats} fan-out repeat), fan-outs of ${profile.fanoutSteps} and ${profile.sleepFanoutSteps} steps instead of 1,000 and 100, and ${profile.memoryPoints} memory points instead of 10,000.`,
    );

  log(
    `${profile.name} run on ${machine.cores} cores, ${machine.memoryGb} GB; stack ${startedStack ? 'starting' : 'already up'}`,
  );
  const bench = new Bench(config, profile, result);
  let stopping = false;
  const cleanup = async () => {
    if (stopping) return;
    stopping = true;
    await bench.stopWorkers().catch((err: unknown) => log(`stopping workers: ${String(err)}`));
    if (startedStack) {
      log('stopping the stack the benchmark started');
      await stackDown(config).catch((err: unknown) => log(`stopping the stack: ${String(err)}`));
    }
  };
  const onSignal = (signal: NodeJS.Signals) => {
    log(`${signal}: cleaning up`);
    void cleanup().finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  if (cases.size < CASES.length)
    result.notes.push(`Only the cases ${[...cases].join(', ')} ran (--cases); the other figures are absent.`);
  const attempt = async <T>(name: string, run: () => Promise<T>): Promise<T | undefined> => {
    const started = performance.now();
    log(`${name} ...`);
    try {
      const value = await run();
      log(`${name} done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
      return value;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      result.errors[name] = message;
      log(`${name} FAILED: ${message}`);
      return undefined;
    }
  };

  try {
    const bundleDir = path.join(config.stateDir, 'bench');
    const stackStarted = performance.now();
    const [pantheonBundle, bareBundle] = await Promise.all([
      buildWorkflowBundle(path.join(bundleDir, 'workflow-bundle.js')),
      buildBareBundle(path.join(bundleDir, 'bare-workflow-bundle.js')),
      // A stack that is already up still gets its dispatcher host (idempotent), as `stack up` would start it.
      startedStack ? stackUp(config) : startDispatcherHost(config),
    ]);
    const staleDispatcher = dispatcherHostWarning(config);
    if (staleDispatcher) {
      result.notes.push(`Dispatcher host: ${staleDispatcher}`);
      log(`WARNING: ${staleDispatcher}`);
    }
    log(`stack and bundles ready in ${((performance.now() - stackStarted) / 1000).toFixed(1)} s`);
    await bench.startWorkers(pantheonBundle, bareBundle);
    bench.resolveMemoryTargets();
    const nodes = listLocalNodes(config);
    result.stack.rayNodes = nodes.length;

    const only = async <T>(which: BenchCase, name: string, run: () => Promise<T>) =>
      cases.has(which) ? attempt(name, run) : undefined;
    const overhead = await only('overhead', 'step overhead (pipeline vs bare activity)', () =>
      bench.stepOverhead(),
    );
    const jobs = await only('jobs', 'Ray job per step', () => bench.jobPerStep());
    // Before the cases that flood Ray with 100,000 tasks: these read Ray's task records by name, which
    // the state API answers slowly once the GCS holds that many.
    result.roundTrip = await only('round-trip', 'round-trip profile of a one-step pipeline', () =>
      bench.roundTrip(Math.min(profile.overheadSamples, 30)),
    );
    result.multiWorker = await only(
      'multi-worker',
      `fan-out of ${profile.sleepFanoutSteps} sleep(${profile.sleepSeconds}) steps with one worker, then three`,
      () => bench.multiWorker(profile.sleepFanoutSteps, profile.sleepSeconds),
    );
    const raw = await only('raw', 'raw Ray (latency and fan-outs)', () => bench.rawRay());
    const noop = await only('fanout', `fan-out of ${profile.fanoutSteps} no-op steps`, () =>
      bench.fanouts(0, profile.fanoutSteps),
    );
    const sleep = await only(
      'sleep-fanout',
      `fan-out of ${profile.sleepFanoutSteps} sleep(${profile.sleepSeconds}) steps`,
      () => bench.fanouts(profile.sleepSeconds, profile.sleepFanoutSteps),
    );
    const map = await only('map', `map step of ${profile.mapItems} no-op items`, () =>
      bench.mapStep(profile.mapItems),
    );
    if (map && raw) result.mapItems = { items: profile.mapItems, ...map, rawRay: raw.items };
    result.bigPipeline = await only(
      'big-pipeline',
      `a pipeline of ${profile.bigPipelineSteps} steps (continuing as new every ${profile.bigPipelineStepsPerRun})`,
      () => bench.bigPipeline(profile.bigPipelineSteps, profile.bigPipelineStepsPerRun),
    );
    result.largeOutput = await only(
      'large-output',
      `${profile.largeOutputMb} MB output handed to the next step`,
      () => bench.largeOutput(profile.largeOutputMb),
    );
    if (raw) result.machine.ray = raw.rayVersion;
    if (overhead && jobs && raw) result.stepOverhead = { ...overhead, rawRay: raw.latency, jobPerStep: jobs };
    if (noop && sleep && raw)
      result.fanout = {
        noop: { ...noop, rawRay: raw.fanout },
        sleep: { sleepS: profile.sleepSeconds, ...sleep, rawRay: raw.sleepFanout },
      };
    if (result.memory) result.memory.bareWorker.idle = result.memory.idle.bareWorker?.rssMb ?? 0;
    await bench.stopWorkers();

    result.agentMemory = await only('memory', `agent memory (${profile.memoryPoints} points)`, () =>
      agentMemoryCase(config, profile),
    );
    result.autoscalerSim = await only('autoscaler-sim', 'autoscaler (simulated)', () => autoscalerSimCase());
    const liveAutoscaler = cases.has('autoscaler') && (profile.name === 'full' || withAutoscaler);
    if (liveAutoscaler) {
      const live = await attempt('autoscaler (live)', () => autoscalerCase(config, profile));
      if (live && 'notAvailable' in live) {
        result.notes.push(`Live autoscaler benchmark not available: ${String(live.notAvailable)}.`);
        log(`autoscaler (live): not available — ${String(live.notAvailable)}`);
      } else result.autoscaler = live;
    } else if (cases.has('autoscaler'))
      result.notes.push(
        'Quick mode skips the live autoscaler benchmark (bench/autoscaler.ts: real node starts and two bursty loads, several minutes); autoscaleReactionS and idleReclaimS come from a full run (or --quick --autoscaler), and the node-seconds and makespan ratios here are the simulated ones.',
      );
  } finally {
    await cleanup();
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }

  const cpuEnd = cpuSnapshot();
  const finishedAt = new Date();
  result.finishedAt = finishedAt.toISOString();
  result.durationS = round((finishedAt.getTime() - startedAt.getTime()) / 1000, 1);
  result.load.loadAvg1End = cpuEnd.loadAvg1;
  result.load.cpuBusyShare = round(
    (cpuEnd.times.busy - cpuStart.times.busy) / Math.max(1, cpuEnd.times.total - cpuStart.times.total),
    2,
  );
  result.summary = summarizeResult(result);

  fs.mkdirSync(outDir, { recursive: true });
  const stamp = startedAt.toISOString().replace(/[:.]/g, '-');
  const base = path.join(outDir, `bench-${stamp}-${profile.name}`);
  const markdown = renderMarkdown(result);
  fs.writeFileSync(`${base}.json`, `${JSON.stringify(result, null, 2)}\n`);
  fs.writeFileSync(`${base}.md`, markdown);
  process.stdout.write(`${markdown}\n`);
  log(`results: ${path.relative(REPO_ROOT, base)}.{json,md} (${result.durationS} s)`);
  process.stdout.write(`${JSON.stringify(result.summary)}\n`);
  // The summary line stays the last line: a failed core case is reported in it (nulls) and in the exit code.
  // (A run of named cases fails only on its own.)
  const coreAsked = cases.has('overhead') || cases.has('fanout');
  if (coreAsked && (result.stepOverhead === undefined || result.fanout === undefined)) process.exitCode = 1;
  if (Object.keys(result.errors).length > 0 && !coreAsked) process.exitCode = 1;
}

main().catch((err: unknown) => {
  log(`failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
  process.exit(1);
});
