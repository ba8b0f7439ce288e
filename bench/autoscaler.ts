/**
 * The autoscaler on the real local stack (Temporal, Ray head, real local Ray
 * worker nodes started and drained by the autoscaler), for one node group of
 * one-CPU nodes, min 0, max 3 (bench/autoscaler-node-groups.json):
 *
 * - autoscaleReactionS: a step is started on the empty group → its side effect
 *   (`append_line`, written when the step runs) is on disk, on a node that did
 *   not exist before. Includes Temporal's backlog statistics, the tick, the
 *   node's start (`ray start` through the worker's node launcher, the raylet's
 *   agents) and admission. Measured on a running autoscaler: the samples start
 *   once the worker's node launcher is up.
 * - idleReclaimS: how long after its idle timeout a node is gone from Ray: Ray's
 *   own idle clock (GCS `idle_duration_ms`) gives when it became idle, the GCS
 *   node list when it left.
 * - nodeSecondsRatio, makespanRatio: a bursty load — two bursts of nine 8 s
 *   steps, 150 s apart (90 s with --quick), quiet in between — on the
 *   autoscaled group starting empty, against a static cluster of the maximum
 *   size. Autoscaled node-seconds count every node process alive from the
 *   load's start until the group is empty again (start-up, idle tail and drain
 *   included). The static cluster (started beforehand, not counted) runs one
 *   burst on its warm nodes; its makespan is the second burst's start plus that
 *   burst's time — a warm cluster does nothing in the quiet gap, so running
 *   it would only add minutes — and its node-seconds are max nodes × makespan.
 *
 *     npx tsx bench/autoscaler.ts [--quick]
 *
 * Uses the stack of the environment (stack/config.ts), starting it
 * if it is not up (and stopping it again). Prints one JSON object on stdout.
 * `runAutoscalerBench` is the same run for another benchmark to call.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { bundleWorkflowCode } from '@temporalio/worker';
import { listLocalNodes, startLocalNode, stopLocalNode } from '../stack/ray-nodes';
import { readRayClusterState, type RayNodeState } from '../activities/scaling/ray-cluster';
import { endRunningAutoscalers } from '../stack/autoscalers';
import { waitFor } from '../stack/processes';
import {
  loadNodeGroups,
  loadStackConfig,
  localRayClientEnv,
  REPO_ROOT,
  type StackConfig,
} from '../stack/config';
import { stackDown, stackIsUp, stackUp } from '../stack/local-stack';
import { loadWorkerConfig } from '../workers/config';
import { createLogger } from '../workers/logger';
import { createPantheonWorker, type PantheonWorker } from '../workers/pantheon-worker';
import type { AutoscalerInputRaw } from '../core/schemas/autoscaler';
import { NODE_GROUP_LABEL } from '../core/schemas/node-groups';
import type { PipelineResult } from '../core/schemas/pipeline-spec';
import { PIPELINE_TASK_QUEUE } from '../core/task-queues';

const GROUPS_FILE = path.join(REPO_ROOT, 'bench', 'autoscaler-node-groups.json');
const SLEEP = 'pantheon_tasks.testkit:sleep';
const APPEND_LINE = 'pantheon_tasks.testkit:append_line';
const PROJECT = 'autoscaler-bench';

const log = (msg: string) => process.stderr.write(`[bench:autoscaler] ${msg}\n`);

export interface AutoscalerBenchOptions {
  /** The stack to run on (must be up). Default: the environment's. */
  stack?: StackConfig;
  /** One reaction sample instead of three, and a shorter load. */
  quick?: boolean;
}

/** One wave of the bursty load, in seconds from its start. */
interface LoadStep {
  atS: number;
  seconds: number;
}

export interface AutoscalerBenchResult {
  autoscaleReactionS: number;
  idleReclaimS: number;
  nodeSecondsRatio: number;
  makespanRatio: number;
  settings: { tickIntervalMs: number; idleTimeoutMs: number; cooldownMs: number; maxScaleUpStep: number };
  reactionSamplesS: number[];
  /** Per reaction sample, milliseconds from the step's start to each phase (see watchReactionPhases). */
  reactionPhasesMs: Record<string, number>[];
  reclaimSamplesS: number[];
  load: { steps: number; stepSeconds: number; burstGapS: number; burstOnWarmNodesS: number };
  autoscaled: { nodeSeconds: number; makespanS: number; peakNodes: number };
  static: { nodeSeconds: number; makespanS: number; nodes: number };
  loadAverage: number[];
  totalSeconds: number;
}

const round = (x: number, digits = 2) => Number(x.toFixed(digits));
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
};

const BURST_STEPS = 9;
const STEP_SECONDS = 8;

/** A burst of nine 8 s steps at each of `times` (seconds from the load's start). */
function bursts(times: number[]): LoadStep[] {
  return times.flatMap((atS) => Array.from({ length: BURST_STEPS }, () => ({ atS, seconds: STEP_SECONDS })));
}

export async function runAutoscalerBench(
  options: AutoscalerBenchOptions = {},
): Promise<AutoscalerBenchResult> {
  const started = Date.now();
  const stack = options.stack ?? loadStackConfig();
  const quick = options.quick ?? false;
  const [group] = loadNodeGroups(GROUPS_FILE).groups;
  if (!group) throw new Error(`${GROUPS_FILE} declares no group`);
  const settings = { tickIntervalMs: 1_000, idleTimeoutMs: 10_000, cooldownMs: 5_000, maxScaleUpStep: 3 };

  const bundlePath = path.join(os.tmpdir(), `pantheon-bench-autoscaler-${process.pid}.js`);
  const noop = () => undefined;
  const bundle = await bundleWorkflowCode({
    workflowsPath: path.join(REPO_ROOT, 'agents', 'workflows.ts'),
    logger: { trace: noop, debug: noop, info: noop, warn: noop, error: console.error, log: noop },
  });
  fs.writeFileSync(bundlePath, bundle.code);
  // The worker runs in this process, and its Ray clients (the bridge, the Jobs API) read Ray's token
  // settings from this process's environment, as `workers/main.ts` does: without them the bridge
  // cannot join the stack's Ray (the live case failed so in the full runs of 2026-12-02 and -03).
  Object.assign(process.env, localRayClientEnv(stack));
  const config = loadWorkerConfig({
    ...process.env,
    TEMPORAL_ADDRESS: stack.temporal.address,
    RAY_ADDRESS: stack.ray.address,
    RAY_DASHBOARD_URL: stack.ray.dashboardUrl,
    ...localRayClientEnv(stack),
    PANTHEON_STATE_DIR: stack.stateDir,
    PANTHEON_NODE_GROUPS: GROUPS_FILE,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  });
  const logger = createLogger(config.logLevel, 'bench-autoscaler');
  const stopAll = async () => {
    for (const node of listLocalNodes(stack, group.name)) await stopLocalNode(stack, node.name);
  };
  await stopAll();
  const connection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({ connection, namespace: config.temporal.namespace });
  // Before this worker polls: a loop left running on the stack would run its ticks here, on this
  // worker's groups, and two loops scaling one group measure neither (one left by `npm start` once
  // took the group to 6 nodes of a maximum of 3).
  const ended = await endRunningAutoscalers(client, 'an autoscaler benchmark is starting on this stack');
  if (ended.length > 0) log(`ended running autoscaler(s) first: ${ended.join(', ')}`);
  const worker: PantheonWorker = await createPantheonWorker(config, logger, {
    workflowBundlePath: bundlePath,
  });
  const workerDone = worker.run();
  const groupNodes = async (): Promise<RayNodeState[]> =>
    (await readRayClusterState(worker.bridge)).nodes.filter((n) => n.labels[NODE_GROUP_LABEL] === group.name);
  const waitEmpty = () =>
    waitFor(
      `group ${group.name} to be empty`,
      async () =>
        (await groupNodes()).length === 0 && listLocalNodes(stack, group.name).length === 0
          ? true
          : undefined,
      180_000,
      250,
    );
  const runStep = async (task: string, args: unknown[]): Promise<PipelineResult> => {
    const handle = await client.workflow.start('pipeline', {
      taskQueue: PIPELINE_TASK_QUEUE,
      workflowId: `bench-as-${crypto.randomBytes(5).toString('hex')}`,
      args: [{ name: 'bench', project: PROJECT, steps: [{ id: 's', task, args }] }],
    });
    return (await handle.result()) as PipelineResult;
  };
  const startAutoscaler = (input: AutoscalerInputRaw) =>
    client.workflow.start('autoscaler', {
      taskQueue: PIPELINE_TASK_QUEUE,
      workflowId: `bench-autoscaler-${crypto.randomBytes(5).toString('hex')}`,
      args: [{ groups: [group.name], ...input }],
      staticSummary: 'autoscaler benchmark',
    });

  /** Runs the load; returns its makespan and, while it runs, samples billable nodes every 250 ms. */
  const runLoad = async (load: LoadStep[], untilEmpty: boolean) => {
    const t0 = Date.now();
    let nodeMs = 0;
    let peak = 0;
    let sampling = true;
    const sampler = (async () => {
      let last = Date.now();
      while (sampling) {
        const now = Date.now();
        const nodes = listLocalNodes(stack, group.name).length;
        nodeMs += nodes * (now - last);
        peak = Math.max(peak, nodes);
        last = now;
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    })();
    let lastDone = t0;
    await Promise.all(
      load.map(async (step) => {
        const delay = t0 + step.atS * 1000 - Date.now();
        if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay)); // pacing the load
        const result = await runStep(SLEEP, [step.seconds]);
        if (result.steps.s?.status !== 'succeeded')
          throw new Error(`a load step did not succeed: ${JSON.stringify(result)}`);
        lastDone = Math.max(lastDone, Date.now());
      }),
    );
    const makespanS = (lastDone - t0) / 1000;
    if (untilEmpty) await waitEmpty();
    sampling = false;
    await sampler;
    return { makespanS, nodeSeconds: nodeMs / 1000, peak };
  };

  try {
    // 1. Reaction and reclaim, from an empty group.
    const autoscaler = await startAutoscaler(settings);
    // A running autoscaler's reaction: its first look at the group starts the worker's
    // node launcher, and a backlog in that first second and a half of a worker's life
    // would also measure the launcher's own start-up (the node then starts as from the CLI).
    await worker.nodeProviders.warmedUp();
    const reactions: number[] = [];
    const reclaims: number[] = [];
    const reactionPhases: Record<string, number>[] = [];
    /**
     * Where a reaction's time goes, seen from outside every component: when the
     * node's `ray start` was spawned (the provider's record), when Ray listed the
     * node, and when the worker's capacity slots admitted a step of the group.
     */
    // What the dispatcher's admission ledger counts of the group's nodes (a node is admitted onto once it does).
    const admissionCpus = async () =>
      (await worker.dispatcher.admissionState()).groups[group.name]?.total['CPU'] ?? 0;
    const watchReactionPhases = (t0: number) => {
      const seen: Record<string, number> = {};
      let watching = true;
      const done = (async () => {
        while (watching) {
          const spawned = listLocalNodes(stack, group.name)[0];
          if (spawned && seen.nodeSpawnedMs === undefined) seen.nodeSpawnedMs = spawned.startedAt - t0;
          if (spawned && seen.rayListedMs === undefined && (await groupNodes()).length > 0)
            seen.rayListedMs = Date.now() - t0;
          if (seen.admittedMs === undefined && (await admissionCpus()) > 0) seen.admittedMs = Date.now() - t0;
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      })();
      return {
        stop: async () => {
          watching = false;
          await done;
          return seen;
        },
      };
    };
    for (let i = 0; i < (quick ? 1 : 2); i++) {
      await waitEmpty();
      const marker = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-bench-')), 'ran');
      const before = new Set((await groupNodes()).map((n) => n.nodeId));
      const t0 = Date.now();
      const watching = watchReactionPhases(t0);
      const result = await runStep(APPEND_LINE, [marker, 'ran']);
      const node = result.steps.s?.node;
      if (!node || before.has(node)) throw new Error('the reaction step did not run on a new node');
      reactions.push((fs.statSync(marker).mtimeMs - t0) / 1000);
      const seen = await watching.stop();
      const step = result.steps.s!;
      reactionPhases.push({
        ...seen,
        stepScheduledMs: (step.scheduledAtMs ?? NaN) - t0,
        stepStartedMs: (step.startedAtMs ?? NaN) - t0,
        rayTaskQueuedMs: step.queuedMs ?? NaN,
        sideEffectMs: fs.statSync(marker).mtimeMs - t0,
      });
      log(`reaction phases (ms from the step's start): ${JSON.stringify(reactionPhases.at(-1))}`);
      // Idle since (Ray's clock) → gone from Ray.
      let idleSinceMs = 0;
      const goneAt = await waitFor(
        'the idle node to be reclaimed',
        async () => {
          const state = await readRayClusterState(worker.bridge);
          const n = state.nodes.find((x) => x.nodeId === node);
          if (!n || n.status === 'DEAD') return Date.now();
          if (n.status === 'IDLE') idleSinceMs = state.readAtMs - n.idleDurationMs;
          return undefined;
        },
        180_000,
        100,
      );
      reclaims.push((goneAt - (idleSinceMs + settings.idleTimeoutMs)) / 1000);
      log(`reaction ${reactions.at(-1)} s, reclaim ${reclaims.at(-1)} s after the idle timeout`);
    }

    // 2. The bursty load, autoscaled from an empty group.
    const gapS = quick ? 90 : 150;
    const load = bursts([0, gapS]);
    await waitEmpty();
    log(`bursty load, autoscaled: ${load.length} steps`);
    const auto = await runLoad(load, true);
    log(
      `autoscaled: makespan ${round(auto.makespanS, 1)} s, ${round(auto.nodeSeconds, 1)} node-seconds, peak ${auto.peak} nodes`,
    );
    await autoscaler.terminate('benchmark phase over');

    // 3. The same load on a static cluster of the maximum size (nodes started beforehand, not counted).
    await waitEmpty();
    log(`bursty load, static cluster of ${group.maxNodes} nodes`);
    // One after another, each tried up to three times: a loaded host can miss Ray's 30 s
    // registration window, and the static cluster's start is not what is measured.
    for (let i = 0; i < group.maxNodes; i++) {
      for (let attempt = 1; ; attempt++) {
        try {
          await startLocalNode(stack, group);
          break;
        } catch (err) {
          if (attempt === 3) throw err;
          log(`static node start failed (attempt ${attempt}); trying again`);
        }
      }
    }
    await waitFor(
      `${group.maxNodes} static nodes to be admitted`,
      async () => ((await admissionCpus()) >= group.maxNodes * group.node.cpus ? true : undefined),
      30_000,
    );
    const oneBurst = await runLoad(bursts([0]), false);
    const fixed = { makespanS: gapS + oneBurst.makespanS };
    log(`static: makespan ${round(fixed.makespanS, 1)} s`);
    const staticNodeSeconds = group.maxNodes * fixed.makespanS;

    return {
      autoscaleReactionS: round(median(reactions)),
      idleReclaimS: round(median(reclaims)),
      nodeSecondsRatio: round(auto.nodeSeconds / staticNodeSeconds, 3),
      makespanRatio: round(auto.makespanS / fixed.makespanS, 3),
      settings,
      reactionSamplesS: reactions.map((x) => round(x)),
      reactionPhasesMs: reactionPhases.map((p) =>
        Object.fromEntries(Object.entries(p).map(([k, v]) => [k, Math.round(v)])),
      ),
      reclaimSamplesS: reclaims.map((x) => round(x)),
      load: {
        steps: load.length,
        stepSeconds: STEP_SECONDS,
        burstGapS: gapS,
        burstOnWarmNodesS: round(oneBurst.makespanS, 1),
      },
      autoscaled: {
        nodeSeconds: round(auto.nodeSeconds, 1),
        makespanS: round(auto.makespanS, 1),
        peakNodes: auto.peak,
      },
      static: {
        nodeSeconds: round(staticNodeSeconds, 1),
        makespanS: round(fixed.makespanS, 1),
        nodes: group.maxNodes,
      },
      loadAverage: os.loadavg().map((x) => round(x)),
      totalSeconds: round((Date.now() - started) / 1000, 0),
    };
  } finally {
    for await (const wf of client.workflow.list({
      query: `ExecutionStatus = 'Running' AND (PantheonProject = '${PROJECT}' OR WorkflowType = 'autoscaler')`,
    }))
      if (wf.workflowId.startsWith('bench-'))
        await client.workflow
          .getHandle(wf.workflowId, wf.runId)
          .terminate('benchmark over')
          .catch(() => undefined);
    worker.shutdown();
    await workerDone;
    await connection.close();
    await stopAll();
    fs.rmSync(bundlePath, { force: true });
  }
}

async function main(): Promise<void> {
  const stack = loadStackConfig();
  const ownsStack = !stackIsUp(stack);
  if (ownsStack) await stackUp(stack);
  try {
    const result = await runAutoscalerBench({ stack, quick: process.argv.includes('--quick') });
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  } finally {
    if (ownsStack) await stackDown(stack);
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  });
}
