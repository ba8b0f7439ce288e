/**
 * What a bench run produces: its profiles (how much of each case a run does),
 * the result document it writes to bench/results/, and the summary of
 * headline figures and goals that ends it. The cases themselves are in
 * bench/run.ts.
 */
import type { MachineInfo } from './machine';
import type { MemoryReading } from './rss';
import { round, type LatencySummary } from './stats';

/** How much of each case a run does. Quick: the same cases, fewer samples. */
export interface BenchProfile {
  name: 'full' | 'quick';
  overheadWarmup: number;
  overheadSamples: number;
  jobWarmup: number;
  jobSamples: number;
  rayWarmup: number;
  raySamples: number;
  fanoutSteps: number;
  /** Items of the map-step case, and the raw Ray tasks it is compared with. */
  mapItems: number;
  /** The output handed from one step to the next in the large-output case (MB). */
  largeOutputMb: number;
  /** Independent echo steps of the big-pipeline case, and the steps per run it continues as new after. */
  bigPipelineSteps: number;
  bigPipelineStepsPerRun: number;
  sleepFanoutSteps: number;
  sleepSeconds: number;
  fanoutRepeats: number;
  /** A small fan-out of each kind runs once, untimed, before the timed ones. */
  fanoutWarmupSteps: number;
  memoryPoints: number;
}

export const PROFILES: Record<'full' | 'quick', BenchProfile> = {
  full: {
    name: 'full',
    overheadWarmup: 10,
    overheadSamples: 100,
    jobWarmup: 2,
    jobSamples: 10,
    rayWarmup: 20,
    raySamples: 200,
    fanoutSteps: 1000,
    mapItems: 100_000,
    largeOutputMb: 100,
    bigPipelineSteps: 20_000,
    bigPipelineStepsPerRun: 2_000,
    sleepFanoutSteps: 100,
    sleepSeconds: 0.1,
    fanoutRepeats: 1,
    fanoutWarmupSteps: 50,
    memoryPoints: 100_000,
  },
  quick: {
    name: 'quick',
    overheadWarmup: 3,
    overheadSamples: 25,
    jobWarmup: 1,
    jobSamples: 2,
    rayWarmup: 10,
    raySamples: 50,
    fanoutSteps: 200,
    mapItems: 10_000,
    largeOutputMb: 100,
    // More steps than one window (1,000) holds, so that the run continues as new at least once.
    bigPipelineSteps: 2_000,
    bigPipelineStepsPerRun: 500,
    sleepFanoutSteps: 50,
    sleepSeconds: 0.1,
    fanoutRepeats: 1,
    fanoutWarmupSteps: 20,
    memoryPoints: 10_000,
  },
};

export interface FanoutFigures {
  steps: number;
  repeats: number;
  makespansS: number[];
  /** Median over the repeats. */
  makespanS: number;
  stepsPerS: number;
}

export interface BenchResult {
  version: 1;
  startedAt: string;
  finishedAt: string;
  durationS: number;
  profile: BenchProfile;
  machine: MachineInfo;
  load: { loadAvg1Start: number; loadAvg1End: number; cpuBusyShare: number };
  stack: {
    startedByBench: boolean;
    stateDir: string;
    temporal: string;
    ray: string;
    rayNodes: number;
    rayCpus: number;
  };
  worker: { launch: string };
  notes: string[];
  stepOverhead?: {
    pipeline: LatencySummary;
    bareActivity: LatencySummary;
    rawRay: LatencySummary;
    jobPerStep: LatencySummary;
  };
  fanout?: {
    noop: { pipeline: FanoutFigures; bareActivity: FanoutFigures; rawRay: FanoutFigures };
    sleep: { sleepS: number; pipeline: FanoutFigures; bareActivity: FanoutFigures; rawRay: FanoutFigures };
  };
  memory?: {
    idle: MemoryReading;
    underFanout: MemoryReading;
    bareWorker: { idle: number; underFanout: number };
  };
  /** A map step over `items` no-op items against as many raw Ray tasks, same resources (1 CPU each). */
  mapItems?: { items: number; map: FanoutFigures; rawRay: FanoutFigures; mapStepRunningS: number };
  /** A pipeline of `steps` independent steps, continuing as new every `stepsPerRun`. */
  bigPipeline?: { steps: number; stepsPerRun: number; runs: number; makespanS: number; stepsPerS: number };
  /** Where a one-step pipeline's time goes, segment by segment (bench/lib/round-trip.ts). */
  roundTrip?: Record<string, LatencySummary>;
  /** The sleep fan-out with one worker, then three (issue #14); the longest wait inside Ray, from its task records. */
  multiWorker?: {
    workers: number;
    steps: number;
    oneWorkerStepsPerS: number;
    stepsPerS: number;
    rayQueueMaxMs: number;
  };
  /** A step's output of `mb` MB handed to the next step by reference. */
  largeOutput?: { mb: number; pipelineS: number; handOffS: number };
  agentMemory?: Record<string, unknown>;
  autoscalerSim?: Record<string, unknown>;
  autoscaler?: Record<string, unknown>;
  errors: Record<string, string>;
  summary: Record<string, number | boolean | string | null>;
}

export function num(record: Record<string, unknown> | undefined, key: string): number | null {
  const value = record?.[key];
  return typeof value === 'number' && Number.isFinite(value) ? value : null;
}

export function summarizeResult(r: BenchResult): BenchResult['summary'] {
  const s = r.stepOverhead;
  const f = r.fanout;
  const m = r.memory;
  const stepOverheadP50Ms = s?.pipeline.p50 ?? null;
  const bareActivityP50Ms = s?.bareActivity.p50 ?? null;
  const jobPerStepP50Ms = s?.jobPerStep.p50 ?? null;
  const fanoutStepsPerS = f?.noop.pipeline.stepsPerS ?? null;
  const bareFanoutStepsPerS = f?.noop.bareActivity.stepsPerS ?? null;
  const workerRssMb = m?.underFanout.worker?.rssMb ?? null;
  const stackIdle = m
    ? Object.entries(m.idle).filter(([n]) => !['worker', 'bridge', 'bareWorker'].includes(n))
    : [];
  const summary: BenchResult['summary'] = {
    profile: r.profile.name,
    stepOverheadP50Ms,
    stepOverheadP95Ms: s?.pipeline.p95 ?? null,
    stepOverheadP99Ms: s?.pipeline.p99 ?? null,
    bareActivityP50Ms,
    rawRayP50Ms: s?.rawRay.p50 ?? null,
    jobPerStepP50Ms,
    fanoutStepsPerS,
    fanoutMakespanS: f?.noop.pipeline.makespanS ?? null,
    bareFanoutStepsPerS,
    rawRayFanoutStepsPerS: f?.noop.rawRay.stepsPerS ?? null,
    sleepFanoutMakespanS: f?.sleep.pipeline.makespanS ?? null,
    bareSleepFanoutMakespanS: f?.sleep.bareActivity.makespanS ?? null,
    rawRaySleepFanoutMakespanS: f?.sleep.rawRay.makespanS ?? null,
    workerRssMb: workerRssMb === null ? null : round(workerRssMb, 0),
    workerIdleRssMb: m?.idle.worker ? round(m.idle.worker.rssMb, 0) : null,
    bridgeRssMb: m?.underFanout.bridge ? round(m.underFanout.bridge.rssMb, 0) : null,
    stackIdleRssMb:
      stackIdle.length > 0
        ? round(
            stackIdle.reduce((sum, [, v]) => sum + v.rssMb, 0),
            0,
          )
        : null,
    autoscaleReactionS: num(r.autoscaler, 'autoscaleReactionS'),
    idleReclaimS: num(r.autoscaler, 'idleReclaimS'),
    // Measured on the live stack when that benchmark ran, simulated otherwise (autoscalerRatiosFrom says which).
    nodeSecondsRatio: num(r.autoscaler, 'nodeSecondsRatio') ?? num(r.autoscalerSim, 'nodeSecondsRatio'),
    makespanRatio: num(r.autoscaler, 'makespanRatio') ?? num(r.autoscalerSim, 'makespanRatio'),
    autoscalerRatiosFrom:
      num(r.autoscaler, 'nodeSecondsRatio') !== null ? 'live' : r.autoscalerSim ? 'simulation' : null,
    mapItemsPerS: r.mapItems?.map.stepsPerS ?? null,
    rawRayItemsPerS: r.mapItems?.rawRay.stepsPerS ?? null,
    mapItemsVsRawRay:
      r.mapItems && r.mapItems.rawRay.stepsPerS > 0
        ? round(r.mapItems.map.stepsPerS / r.mapItems.rawRay.stepsPerS, 2)
        : null,
    bigPipelineSteps: r.bigPipeline?.steps ?? null,
    bigPipelineStepsPerS: r.bigPipeline?.stepsPerS ?? null,
    bigPipelineRuns: r.bigPipeline?.runs ?? null,
    multiWorkerStepsPerS: r.multiWorker?.stepsPerS ?? null,
    multiWorkerOneWorkerStepsPerS: r.multiWorker?.oneWorkerStepsPerS ?? null,
    multiWorkerRayQueueMaxMs: r.multiWorker ? round(r.multiWorker.rayQueueMaxMs, 0) : null,
    largeOutputMbPerS: r.largeOutput ? round(r.largeOutput.mb / r.largeOutput.handOffS, 1) : null,
    largeOutputHandOffS: r.largeOutput?.handOffS ?? null,
    recallP50Ms: num(r.agentMemory, 'recallP50Ms'),
    recallP99Ms: num(r.agentMemory, 'recallP99Ms'),
    memoryPoints: num(r.agentMemory, 'points'),
    retainPointsPerS: num(r.agentMemory, 'retainPointsPerS'),
    embedP50Ms: num(r.agentMemory, 'embedP50Ms'),
    recallAt5Semantic: num(r.agentMemory, 'recallAt5Semantic'),
    recallAt5Hashing: num(r.agentMemory, 'recallAt5Hashing'),
    graphRecallP50Ms: num(r.agentMemory, 'graphRecallP50Ms'),
    memoryServerRssMb: num(r.agentMemory, 'memoryServerRssMb'),
    loadAvg1: r.load.loadAvg1End,
    errorCount: Object.keys(r.errors).length,
  };
  summary.goalStepOverheadMet =
    stepOverheadP50Ms !== null && bareActivityP50Ms !== null
      ? stepOverheadP50Ms <= bareActivityP50Ms + 5
      : null;
  summary.goalFanoutMet =
    fanoutStepsPerS !== null && bareFanoutStepsPerS !== null
      ? fanoutStepsPerS >= 0.8 * bareFanoutStepsPerS
      : null;
  summary.jobOverheadRatio =
    stepOverheadP50Ms !== null && jobPerStepP50Ms !== null
      ? round(jobPerStepP50Ms / stepOverheadP50Ms, 1)
      : null;
  summary.goalJobRatioMet =
    summary.jobOverheadRatio === null ? null : (summary.jobOverheadRatio as number) >= 50;
  summary.goalWorkerRssMet = workerRssMb === null ? null : workerRssMb <= 200;
  summary.goalMapItemsMet =
    summary.mapItemsVsRawRay === null ? null : (summary.mapItemsVsRawRay as number) >= 0.8;
  // Issue #14: with 3 workers, no step waits in Ray beyond one scheduling round, and no loss of throughput.
  summary.goalMultiWorkerMet = r.multiWorker
    ? r.multiWorker.rayQueueMaxMs <= 100 && r.multiWorker.stepsPerS >= r.multiWorker.oneWorkerStepsPerS
    : null;
  summary.goalLargeOutputMet = r.largeOutput ? r.largeOutput.handOffS < 5 : null;
  // Issue #15's goals hold at 100,000 points (a quick run's 10,000 says nothing about them).
  const recallP50 = summary.recallP50Ms as number | null;
  const recallP99 = summary.recallP99Ms as number | null;
  const atScale = summary.memoryPoints !== null && (summary.memoryPoints as number) >= 100_000;
  summary.goalRecallMet =
    recallP50 !== null && recallP99 !== null && atScale ? recallP50 <= 10 && recallP99 <= 30 : null;
  summary.goalMemoryRssMet =
    summary.memoryServerRssMb !== null && atScale ? (summary.memoryServerRssMb as number) < 500 : null;
  return summary;
}
