/**
 * A burst on a group that starts with no node: the autoscaler grows it to its
 * maximum from the group's Temporal backlog, the steps spread over the new
 * nodes, and once they have been idle for the idle timeout the group is back
 * to zero. Every node count is Ray's own (the dashboard's node list); the
 * worker's Prometheus endpoint reports the same story.
 */
import { freePort } from '../../stack/processes';
import { startAutoscalerHarness, BURN, type AutoscalerHarness } from '../helpers/autoscaler-harness';
import { waitUntil } from '../helpers/test-env';

const GROUP = 'as-burst'; // test/fixtures/autoscaler/burst.json: 1 CPU per node, min 0, max 3
/** Long enough that nodes joining one after another on a loaded host are up together. */
const IDLE_TIMEOUT_MS = 20_000;
const TICK_MS = 1_000;
/** From a node joining to a step admitted onto it: the admission ledger's node read (250 ms), a poll, a loaded host. */
const ADMISSION_SLACK_MS = 3_000;

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

  // Ray's view, sampled from the burst until the group is empty again.
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
  const steps = Object.values(result.steps);
  expect(steps.every((s) => s.status === 'succeeded')).toBe(true);

  // The autoscaler's part: twelve queued one-CPU steps ask for the group's maximum at once.
  const status = await harness.status();
  const firstUp = status.events.find((e) => e.direction === 'up');
  expect(firstUp?.count).toBe(3);

  // Back to zero: not before the nodes have been idle for the timeout, and within a few ticks after it.
  await waitUntil(
    `Ray to see no alive ${GROUP} node`,
    async () => ((await harness.aliveNodes(GROUP)).length === 0 ? true : undefined),
    IDLE_TIMEOUT_MS + 120_000,
    250,
  );
  const emptyAfterMs = Date.now() - finishedAt;
  sampling = false;
  await sampler;
  expect(peakAlive).toBe(3);
  expect(emptyAfterMs).toBeGreaterThanOrEqual(IDLE_TIMEOUT_MS - 1_000);

  // Spread: every step ran on a node of the group, and every node that was up while
  // steps still waited took some. (A node start is seconds on a quiet host and can be
  // much longer on a loaded one; a node that joined after the last step began had
  // nothing left to take.)
  const joinedAt = await harness.nodeStartTimes(GROUP);
  expect(joinedAt.size).toBe(3);
  const perNode = new Map<string, number>();
  for (const step of steps) {
    expect(joinedAt.has(step.node ?? '')).toBe(true);
    perNode.set(step.node!, (perNode.get(step.node!) ?? 0) + 1);
  }
  const lastStepStartedAt = Math.max(...steps.map((s) => (s as { startedAtMs?: number }).startedAtMs ?? 0));
  const upWhileStepsWaited = [...joinedAt].filter(([, at]) => at + ADMISSION_SLACK_MS < lastStepStartedAt);
  expect(upWhileStepsWaited.length).toBeGreaterThanOrEqual(1);
  for (const [nodeId] of upWhileStepsWaited) expect(perNode.get(nodeId) ?? 0).toBeGreaterThan(0);

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
  const final = await harness.status();
  const added = final.events.filter((e) => e.direction === 'up').reduce((sum, e) => sum + e.count, 0);
  const removed = final.events.filter((e) => e.direction === 'down').reduce((sum, e) => sum + e.count, 0);
  // Every node that joined was drained and removed (a start that failed on a loaded host never joined).
  expect(removed).toBe(joinedAt.size);

  // The worker's Prometheus endpoint tells the same story.
  const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
  const sample = (name: string) => {
    const line = metrics.split('\n').find((l) => l.startsWith(name));
    if (line === undefined) throw new Error(`metric ${name} missing from:\n${metrics}`);
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  const upEvents = final.events.filter((e) => e.direction === 'up').length;
  const downEvents = final.events.filter((e) => e.direction === 'down').length;
  expect(sample(`pantheon_autoscaler_scale_events_total{group="${GROUP}",direction="up"}`)).toBe(upEvents);
  expect(sample(`pantheon_autoscaler_scale_events_total{group="${GROUP}",direction="down"}`)).toBe(
    downEvents,
  );
  expect(sample(`pantheon_autoscaler_nodes_changed_total{group="${GROUP}",direction="up"}`)).toBe(added);
  expect(sample(`pantheon_autoscaler_nodes_changed_total{group="${GROUP}",direction="down"}`)).toBe(removed);
  expect(sample(`pantheon_autoscaler_nodes{group="${GROUP}",kind="desired"}`)).toBe(0);
  expect(sample(`pantheon_autoscaler_backlog_steps{group="${GROUP}"}`)).toBe(0);
  // At least the 36 CPU-seconds the steps burned, plus each node's idle timeout.
  expect(sample(`pantheon_autoscaler_node_seconds_total{group="${GROUP}"}`)).toBeGreaterThan(
    36 + (3 * IDLE_TIMEOUT_MS) / 1000,
  );
}, 480_000); // node starts take far longer on a loaded host than jest's default allows

test('new backlog starts a tick at once instead of waiting for the next one', async () => {
  await harness.autoscaler?.terminate('the next test starts its own');
  expect(await harness.aliveNodes(GROUP)).toHaveLength(0);
  // A long interval (within the 30 s the observe activity may wait): the timer alone would tick again only after it.
  const tickMs = 25_000;
  await harness.startAutoscaler({ tickIntervalMs: tickMs, idleTimeoutMs: 5_000, cooldownMs: 1_000 });
  const firstTick = await waitUntil(
    'the first tick',
    async () => (await harness.status()).lastTick ?? undefined,
    30_000,
    100,
  );

  const result = await harness.env.runPipeline({
    name: 'between-ticks',
    project: 'autoscaler-test',
    steps: [{ id: 'one', task: BURN, args: [1] }],
  });
  expect(result.steps.one!.status).toBe('succeeded');
  const up = (await harness.status()).events.find((e) => e.direction === 'up');
  expect(up?.count).toBe(1);
  expect(up!.atMs - firstTick.atMs).toBeLessThan(tickMs / 2);
}, 300_000);
