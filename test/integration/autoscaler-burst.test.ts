/**
 * A burst on a group that starts with no node: the autoscaler grows it to its
 * maximum from the group's Temporal backlog, the steps spread over the new
 * nodes, and once they have been idle for the idle timeout the group is back
 * to zero. Every node count is Ray's own (the dashboard's node list); the
 * worker's Prometheus endpoint reports the same story.
 */
import { freePort } from '../../scripts/lib/processes';
import { startAutoscalerHarness, BURN, type AutoscalerHarness } from '../helpers/autoscaler-harness';
import { waitUntil } from '../helpers/test-env';

const GROUP = 'as-burst'; // test/fixtures/autoscaler/burst.json: 1 CPU per node, min 0, max 3
const IDLE_TIMEOUT_MS = 8_000;
const TICK_MS = 1_000;

let harness: AutoscalerHarness;
let metricsPort: number;
beforeAll(async () => {
  metricsPort = await freePort();
  harness = await startAutoscalerHarness('burst', { PANTHEON_METRICS_PORT: String(metricsPort) });
});
afterAll(async () => {
  await harness?.close();
});

test('12 burn(3) steps: up to 3 nodes, spread over them, back to 0 after the idle timeout', async () => {
  expect(await harness.aliveNodes(GROUP)).toHaveLength(0);
  await harness.startAutoscaler({
    tickIntervalMs: TICK_MS,
    idleTimeoutMs: IDLE_TIMEOUT_MS,
    cooldownMs: 5_000,
    maxScaleUpStep: 3,
  });

  let peakAlive = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peakAlive = Math.max(peakAlive, (await harness.aliveNodes(GROUP)).length);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  })();

  const result = await harness.env.runPipeline({
    name: 'burst',
    project: 'autoscaler-test',
    steps: Array.from({ length: 12 }, (_, i) => ({ id: `burn-${i}`, task: BURN, args: [3] })),
  });
  const finishedAt = Date.now();
  sampling = false;
  await sampler;

  const steps = Object.values(result.steps);
  expect(steps.every((s) => s.status === 'succeeded')).toBe(true);
  expect(peakAlive).toBe(3);

  // Spread: every step ran on a node of the group, and all three nodes took steps.
  const groupNodes = new Set((await harness.nodesEverSeen(GROUP)).map((n) => n.nodeId));
  expect(groupNodes.size).toBe(3);
  const perNode = new Map<string, number>();
  for (const step of steps) {
    expect(groupNodes.has(step.node ?? '')).toBe(true);
    perNode.set(step.node!, (perNode.get(step.node!) ?? 0) + 1);
  }
  expect(perNode.size).toBe(3);

  // Back to zero: not before the nodes have been idle for the timeout, and within a few ticks after it.
  await waitUntil(
    `Ray to see no alive ${GROUP} node`,
    async () => ((await harness.aliveNodes(GROUP)).length === 0 ? true : undefined),
    IDLE_TIMEOUT_MS + 60_000,
    250,
  );
  const emptyAfterMs = Date.now() - finishedAt;
  expect(emptyAfterMs).toBeGreaterThanOrEqual(IDLE_TIMEOUT_MS - 1_000);

  const status = await harness.status();
  const added = status.events.filter((e) => e.direction === 'up').reduce((sum, e) => sum + e.count, 0);
  const removed = status.events.filter((e) => e.direction === 'down').reduce((sum, e) => sum + e.count, 0);
  expect(added).toBe(3);
  expect(removed).toBe(3);
  // And the autoscaler sees it so: a tick after the last removal finds nothing and wants nothing.
  await waitUntil(
    'a tick that sees the group empty',
    async () => {
      const d = (await harness.status()).lastTick?.decision[0];
      return d?.current === 0 && d.desired === 0 ? true : undefined;
    },
    30_000,
    250,
  );

  // The worker's Prometheus endpoint tells the same story.
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const sample = (name: string) => {
    const line = metrics.split('\n').find((l) => l.startsWith(name));
    if (line === undefined) throw new Error(`metric ${name} missing from:\n${metrics}`);
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  const upEvents = status.events.filter((e) => e.direction === 'up').length;
  const downEvents = status.events.filter((e) => e.direction === 'down').length;
  expect(sample(`pantheon_autoscaler_scale_events_total{group="${GROUP}",direction="up"}`)).toBe(upEvents);
  expect(sample(`pantheon_autoscaler_scale_events_total{group="${GROUP}",direction="down"}`)).toBe(
    downEvents,
  );
  expect(sample(`pantheon_autoscaler_nodes_changed_total{group="${GROUP}",direction="up"}`)).toBe(3);
  expect(sample(`pantheon_autoscaler_nodes_changed_total{group="${GROUP}",direction="down"}`)).toBe(3);
  expect(sample(`pantheon_autoscaler_nodes{group="${GROUP}",kind="desired"}`)).toBe(0);
  expect(sample(`pantheon_autoscaler_backlog_steps{group="${GROUP}"}`)).toBe(0);
  // Three nodes, each up for at least the steps it ran plus the idle timeout.
  expect(sample(`pantheon_autoscaler_node_seconds_total{group="${GROUP}"}`)).toBeGreaterThan(
    36 + (3 * IDLE_TIMEOUT_MS) / 1000,
  );
});
