/**
 * A load that oscillates around the threshold between one node and two, for a
 * minute: one long step keeps one node busy throughout, and every few seconds
 * a short step arrives that needs a second node, then leaves it idle. With an
 * idle timeout shorter than the gaps, a policy without hysteresis would add
 * and remove the second node on every wave; the cooldown allows no more than
 * one scale event per cooldown in opposite directions.
 */
import { SLEEP, startAutoscalerHarness, type AutoscalerHarness } from '../helpers/autoscaler-harness';
import { uniqueId, waitUntil } from '../helpers/test-env';

const GROUP = 'as-osc'; // test/fixtures/autoscaler/oscillation.json: 1 CPU, min 0, max 2
const COOLDOWN_MS = 20_000;
const WAVE_EVERY_MS = 8_000;
const LOAD_MS = 60_000;
/**
 * A minute of load, plus node starts that take seconds on a quiet host and far
 * longer on a loaded one (a start that misses Ray's 30 s registration window is
 * retried by the next tick): well past jest's default.
 */
const TEST_TIMEOUT_MS = 480_000;

let harness: AutoscalerHarness;
beforeAll(async () => {
  harness = await startAutoscalerHarness('oscillation');
});
afterAll(async () => {
  await harness?.close();
});

test(
  'oscillating load for a minute: no more than one scale event per cooldown',
  async () => {
    const { env } = harness;
    await harness.startAutoscaler({
      tickIntervalMs: 1_000,
      idleTimeoutMs: 2_000,
      cooldownMs: COOLDOWN_MS,
      maxScaleUpStep: 2,
    });

    // The base load: one step that holds one node for the whole minute.
    const base = await env.startPipeline({
      name: 'base-load',
      project: 'autoscaler-test',
      steps: [{ id: 'hold', task: SLEEP, args: [LOAD_MS / 1000 + 30] }],
    });
    await waitUntil(
      'the base step to hold a node',
      async () => ((await env.progress(base)).steps.hold?.status === 'running' ? true : undefined),
      180_000,
      250,
    );
    await waitUntil(
      'the first node to join',
      async () => ((await harness.aliveNodes(GROUP)).length >= 1 ? true : undefined),
      180_000,
      250,
    );

    // The waves: a short step every WAVE_EVERY_MS, each wanting a second node for a moment.
    const loadStart = Date.now();
    const waves: Promise<unknown>[] = [];
    for (let at = 0; at < LOAD_MS; at += WAVE_EVERY_MS) {
      const delay = loadStart + at - Date.now();
      if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay)); // pacing the load, not waiting for a state
      const handle = await env.startPipeline(
        { name: 'wave', project: 'autoscaler-test', steps: [{ id: 'short', task: SLEEP, args: [2] }] },
        uniqueId('wave'),
      );
      waves.push(handle.result());
    }
    await Promise.all(waves);
    const loadEnd = Date.now();
    await harness.autoscaler!.signal('stop', { reason: 'oscillation test over' });
    const summary = (await harness.autoscaler!.result()) as {
      events: Array<{ atMs: number; group: string; direction: 'up' | 'down'; count: number }>;
    };
    await base.cancel();

    const events = summary.events.filter(
      (e) => e.group === GROUP && e.atMs >= loadStart && e.atMs <= loadEnd,
    );
    // The second node was wanted: the group did scale.
    expect(events.some((e) => e.direction === 'up')).toBe(true);
    // Hysteresis: a change of direction waits for the cooldown.
    for (let i = 1; i < events.length; i++) {
      if (events[i]!.direction !== events[i - 1]!.direction)
        expect(events[i]!.atMs - events[i - 1]!.atMs).toBeGreaterThanOrEqual(COOLDOWN_MS);
    }
    // Overall: no more than one event per cooldown over the minute (plus the one that opens it).
    expect(events.length).toBeLessThanOrEqual(Math.floor((loadEnd - loadStart) / COOLDOWN_MS) + 1);
    // Ray's view agrees: it never saw more nodes of the group than the autoscaler added.
    const added = summary.events
      .filter((e) => e.group === GROUP && e.direction === 'up')
      .reduce((sum, e) => sum + e.count, 0);
    expect((await harness.nodesEverSeen(GROUP)).length).toBeLessThanOrEqual(added);
  },
  TEST_TIMEOUT_MS,
);
