/**
 * The autoscaling policy against a static cluster of the maximum size, on a
 * bursty load, in simulation (activities/scaling/simulate.ts). Prints JSON.
 * Goals (issue 5): node-seconds ≤ 0.6× the static cluster's, makespan within
 * +15 %. Run: npx tsx bench/autoscaler-sim.ts
 */
import {
  generateLoad,
  simulate,
  type LoadPattern,
  type SimulationOptions,
} from '../core/autoscaling/simulate';
import type { PolicySettings } from '../core/autoscaling/policy-types';
import { nodeGroupSchema } from '../core/schemas/node-groups';

const MINUTE = 60_000;

const group = nodeGroupSchema.parse({
  name: 'cpu',
  node: { cpus: 2, memoryMb: 4096 },
  minNodes: 0,
  maxNodes: 20,
  costPerNodeHour: 0.1,
});

/** Five bursts of different sizes and step lengths at irregular times, over a light steady trickle. */
const patterns: LoadPattern[] = [
  { kind: 'burst', atMs: 0, count: 120, durationMs: 45_000 },
  { kind: 'burst', atMs: 8 * MINUTE, count: 60, durationMs: 30_000 },
  { kind: 'burst', atMs: 15 * MINUTE, count: 200, durationMs: 60_000 },
  { kind: 'burst', atMs: 27 * MINUTE, count: 40, durationMs: 20_000 },
  { kind: 'burst', atMs: 35 * MINUTE, count: 150, durationMs: 45_000 },
  { kind: 'steady', fromMs: 0, toMs: 35 * MINUTE, perSecond: 0.05, durationMs: 10_000 },
];

const settings: PolicySettings = {
  idleTimeoutMs: 60_000,
  maxScaleUpStep: 10,
  cooldownMs: 30_000,
  anticipationSeconds: 0,
};

const common: Omit<SimulationOptions, 'mode'> = {
  groups: [group],
  load: generateLoad(patterns),
  settings,
  tickMs: 2_000,
  nodeStartupMs: 5_000,
};

const started = process.hrtime.bigint();
const autoscaled = simulate({ ...common, mode: 'autoscale' });
const fixed = simulate({ ...common, mode: 'static' });
const wallMs = Number(process.hrtime.bigint() - started) / 1e6;

const round = (x: number, digits = 3) => Number(x.toFixed(digits));
const nodeSecondsRatio = round(autoscaled.nodeSeconds / fixed.nodeSeconds);
const makespanRatio = round(autoscaled.makespanMs / fixed.makespanMs);

console.log(
  JSON.stringify(
    {
      scenario: {
        steps: common.load.length,
        group: { cpusPerNode: group.node.cpus, minNodes: group.minNodes, maxNodes: group.maxNodes },
        tickMs: common.tickMs,
        nodeStartupMs: common.nodeStartupMs,
        settings,
      },
      nodeSecondsRatio,
      makespanRatio,
      flaps: autoscaled.flaps,
      goalsMet: nodeSecondsRatio <= 0.6 && makespanRatio <= 1.15,
      autoscaled: {
        nodeSeconds: round(autoscaled.nodeSeconds, 0),
        makespanSeconds: autoscaled.makespanMs / 1000,
        peakNodes: autoscaled.peakNodes,
        scaleUps: autoscaled.scaleUps,
        scaleDowns: autoscaled.scaleDowns,
        meanWaitSeconds: round(autoscaled.meanWaitMs / 1000, 1),
        busyNodeRemovalsRefused: autoscaled.busyNodeRemovalsRefused,
      },
      static: {
        nodeSeconds: round(fixed.nodeSeconds, 0),
        makespanSeconds: fixed.makespanMs / 1000,
        nodes: group.maxNodes,
        meanWaitSeconds: round(fixed.meanWaitMs / 1000, 1),
      },
      wallMs: round(wallMs, 0),
    },
    null,
    2,
  ),
);
