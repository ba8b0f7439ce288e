import type { PolicySettings } from '../../core/autoscaling/policy-types';
import {
  generateLoad,
  simulate,
  type ScaleEvent,
  type SimulationOptions,
  type SimulationReport,
} from '../../core/autoscaling/simulate';
import { nodeGroupSchema, type NodeGroup } from '../../core/schemas/node-groups';

const SECOND = 1_000;
const MINUTE = 60 * SECOND;

function makeGroup(
  name: string,
  cpus: number,
  minNodes: number,
  maxNodes: number,
  costPerNodeHour = 0.1,
): NodeGroup {
  return nodeGroupSchema.parse({ name, node: { cpus, memoryMb: 4096 }, minNodes, maxNodes, costPerNodeHour });
}

const settings: PolicySettings = {
  idleTimeoutMs: 60 * SECOND,
  maxScaleUpStep: 10,
  cooldownMs: 30 * SECOND,
  anticipationSeconds: 0,
};

function run(
  options: Partial<SimulationOptions> & Pick<SimulationOptions, 'groups' | 'load'>,
): SimulationReport {
  return simulate({ mode: 'autoscale', settings, tickMs: 2 * SECOND, nodeStartupMs: 5 * SECOND, ...options });
}

/** Events of opposite direction closer than the cooldown, per group. */
function reversalsWithin(events: readonly ScaleEvent[], cooldownMs: number): number {
  const last = new Map<string, ScaleEvent>();
  let reversals = 0;
  for (const e of events) {
    const previous = last.get(e.group);
    if (previous && previous.direction !== e.direction && e.atMs - previous.atMs < cooldownMs) reversals += 1;
    last.set(e.group, e);
  }
  return reversals;
}

describe('generateLoad', () => {
  it('builds bursts, steady streams and square waves, sorted by arrival', () => {
    const load = generateLoad([
      { kind: 'steady', fromMs: 0, toMs: 10 * SECOND, perSecond: 2, durationMs: 1000 },
      { kind: 'burst', atMs: 5 * SECOND, count: 7, durationMs: 1000 },
      {
        kind: 'oscillating',
        fromMs: 0,
        toMs: 20 * SECOND,
        periodMs: 10 * SECOND,
        highPerSecond: 1,
        lowPerSecond: 0,
        durationMs: 1000,
      },
    ]);
    expect(load).toHaveLength(20 + 7 + 10);
    expect(load.map((s) => s.arrivalMs)).toEqual([...load.map((s) => s.arrivalMs)].sort((a, b) => a - b));
    expect(load.filter((s) => s.arrivalMs === 5 * SECOND).length).toBeGreaterThanOrEqual(7);
  });
});

describe('simulate', () => {
  const cpu = makeGroup('cpu', 2, 0, 10);

  it('a burst scales up to the maximum, finishes every step, and returns to minNodes', () => {
    const load = generateLoad([{ kind: 'burst', atMs: 0, count: 200, durationMs: 30 * SECOND }]);
    const report = run({ groups: [cpu], load });
    expect(report).toMatchObject({
      completedSteps: 200,
      unfinishedSteps: 0,
      peakNodes: 10,
      flaps: 0,
      busyNodeRemovalsRefused: 0,
    });
    const added = report.events.filter((e) => e.direction === 'up').reduce((sum, e) => sum + e.nodes, 0);
    const removed = report.events.filter((e) => e.direction === 'down').reduce((sum, e) => sum + e.nodes, 0);
    expect(added).toBe(10);
    expect(removed).toBe(10);
    // 200 one-CPU steps of 30 s on 20 CPUs: 10 waves, plus start-up and the first tick.
    expect(report.makespanMs).toBeGreaterThanOrEqual(300 * SECOND);
    expect(report.makespanMs).toBeLessThan(320 * SECOND);
  });

  it('uses far fewer node-seconds than a static cluster of the maximum on bursty load, for little more makespan', () => {
    const load = generateLoad([
      { kind: 'burst', atMs: 0, count: 100, durationMs: 30 * SECOND },
      { kind: 'burst', atMs: 10 * MINUTE, count: 100, durationMs: 30 * SECOND },
      { kind: 'burst', atMs: 20 * MINUTE, count: 100, durationMs: 30 * SECOND },
    ]);
    const autoscaled = run({ groups: [cpu], load });
    const fixed = run({ groups: [cpu], load, mode: 'static' });
    expect(fixed.completedSteps).toBe(300);
    expect(autoscaled.completedSteps).toBe(300);
    expect(autoscaled.nodeSeconds / fixed.nodeSeconds).toBeLessThanOrEqual(0.6);
    expect(autoscaled.makespanMs / fixed.makespanMs).toBeLessThanOrEqual(1.15);
    expect(autoscaled.flaps).toBe(0);
  });

  it('follows a steady stream with a stable cluster: few scale events, no flaps', () => {
    // 2 steps/s of 10 s each keep 20 CPUs busy: all 10 nodes, all the time.
    const load = generateLoad([
      { kind: 'steady', fromMs: 0, toMs: 10 * MINUTE, perSecond: 2, durationMs: 10 * SECOND },
    ]);
    const report = run({ groups: [cpu], load });
    expect(report.completedSteps).toBe(load.length);
    expect(report.flaps).toBe(0);
    expect(report.peakNodes).toBe(10);
    // Up while the stream ramps up, down after it ends, nothing in between.
    expect(report.events.filter((e) => e.atMs >= 30 * SECOND && e.atMs < 10 * MINUTE)).toEqual([]);
    expect(report.events.every((e) => (e.direction === 'up') === e.atMs < 30 * SECOND)).toBe(true);
    expect(report.busyNodeRemovalsRefused).toBe(0);
  });

  it('does not flap on load oscillating around a threshold', () => {
    // Each half period needs either 6 or 4 nodes; the swings are shorter than the idle timeout.
    const load = generateLoad([
      {
        kind: 'oscillating',
        fromMs: 0,
        toMs: 5 * MINUTE,
        periodMs: 40 * SECOND,
        highPerSecond: 1.2,
        lowPerSecond: 0.8,
        durationMs: 10 * SECOND,
      },
    ]);
    const report = run({ groups: [cpu], load });
    expect(report.completedSteps).toBe(load.length);
    expect(report.flaps).toBe(0);
    expect(reversalsWithin(report.events, settings.cooldownMs)).toBe(0);
    // While the load lasts, the cluster moves no more than once per cooldown after warming up.
    const duringLoad = report.events.filter((e) => e.atMs > MINUTE && e.atMs < 5 * MINUTE);
    expect(duringLoad.length).toBeLessThanOrEqual((4 * MINUTE) / settings.cooldownMs);
  });

  it('does not flap when the swings outlast the idle timeout either', () => {
    const load = generateLoad([
      {
        kind: 'oscillating',
        fromMs: 0,
        toMs: 10 * MINUTE,
        periodMs: 3 * MINUTE,
        highPerSecond: 2,
        lowPerSecond: 0.2,
        durationMs: 10 * SECOND,
      },
    ]);
    const report = run({ groups: [cpu], load });
    expect(report.completedSteps).toBe(load.length);
    expect(report.scaleDowns).toBeGreaterThan(0);
    expect(reversalsWithin(report.events, settings.cooldownMs)).toBe(report.flaps);
    expect(report.flaps).toBe(0);
  });

  it('routes steps to the cheapest group that holds them and scales each group on its own backlog', () => {
    const small = makeGroup('small', 1, 0, 20, 0.1);
    const gpu = nodeGroupSchema.parse({
      name: 'gpu',
      node: { cpus: 4, gpus: 1, memoryMb: 16384 },
      minNodes: 0,
      maxNodes: 3,
      costPerNodeHour: 1,
    });
    const gpuStep = { gpus: 1 };
    const load = generateLoad([
      { kind: 'burst', atMs: 0, count: 20, durationMs: 20 * SECOND },
      { kind: 'burst', atMs: 0, count: 6, durationMs: 20 * SECOND, resources: gpuStep },
      { kind: 'burst', atMs: 0, count: 2, durationMs: 20 * SECOND, resources: { gpus: 8 } },
    ]);
    const report = run({ groups: [small, gpu], load, describePendingDemand: true });
    expect(report.infeasibleSteps).toBe(2);
    expect(report.completedSteps).toBe(26);
    expect(report.nodeSecondsByGroup.small).toBeGreaterThan(0);
    expect(report.nodeSecondsByGroup.gpu).toBeGreaterThan(0);
    const gpuUps = report.events.filter((e) => e.group === 'gpu' && e.direction === 'up');
    expect(gpuUps.reduce((sum, e) => sum + e.nodes, 0)).toBe(3);
  });

  it('stops growing when the node-hour budget is spent, and still finishes on the nodes it has', () => {
    const load = generateLoad([{ kind: 'burst', atMs: 0, count: 400, durationMs: 60 * SECOND }]);
    const budget = { nodeHours: 0.5, nodeHoursUsed: 0, lookaheadMs: 5 * MINUTE };
    const report = run({ groups: [cpu], load, settings: { ...settings, budget } });
    const unbounded = run({ groups: [cpu], load });
    expect(report.completedSteps).toBe(400);
    // 0.5 node-hours over a 5 min lookahead pay for 6 nodes at once.
    expect(report.peakNodes).toBe(6);
    expect(unbounded.peakNodes).toBe(10);
    expect(report.makespanMs).toBeGreaterThan(unbounded.makespanMs);
  });

  it('is deterministic', () => {
    const load = generateLoad([
      { kind: 'burst', atMs: 0, count: 50, durationMs: 15 * SECOND },
      { kind: 'steady', fromMs: 0, toMs: 2 * MINUTE, perSecond: 0.5, durationMs: 5 * SECOND },
    ]);
    expect(run({ groups: [cpu], load })).toEqual(run({ groups: [cpu], load }));
  });

  it('handles 1,000 nodes and 100,000 queued steps', () => {
    const wide = makeGroup('wide', 2, 0, 1000);
    const load = generateLoad([{ kind: 'burst', atMs: 0, count: 100_000, durationMs: 30 * SECOND }]);
    const report = run({ groups: [wide], load, settings: { ...settings, maxScaleUpStep: 250 } });
    expect(report).toMatchObject({
      completedSteps: 100_000,
      unfinishedSteps: 0,
      peakNodes: 1000,
      flaps: 0,
      busyNodeRemovalsRefused: 0,
    });
    // 100,000 steps of 30 s on 2,000 CPUs: 50 waves.
    expect(report.makespanMs).toBeGreaterThanOrEqual(50 * 30 * SECOND);
    expect(report.makespanMs).toBeLessThan(50 * 30 * SECOND + MINUTE);
  });
});
