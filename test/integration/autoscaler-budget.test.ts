/**
 * A node-hour budget caps scale-up: with 0.01 node-hours (36 node-seconds) and
 * a 20 s lookahead, the budget pays for one node, so three waiting steps get
 * one node instead of three, the decision says the budget is why, and the
 * steps still all run (one after another).
 */
import { SLEEP, startAutoscalerHarness, type AutoscalerHarness } from '../helpers/autoscaler-harness';
import { waitUntil } from '../helpers/test-env';

const GROUP = 'as-budget'; // test/fixtures/autoscaler/budget.json: 1 CPU, min 0, max 3

let harness: AutoscalerHarness;
beforeAll(async () => {
  harness = await startAutoscalerHarness('budget');
});
afterAll(async () => {
  await harness?.close();
});

test('scale-up stops at the budget and the decision says why', async () => {
  await harness.startAutoscaler({
    tickIntervalMs: 1_000,
    idleTimeoutMs: 4_000,
    cooldownMs: 2_000,
    maxScaleUpStep: 3,
    budget: { nodeHours: 0.01, lookaheadMs: 20_000 },
  });

  let peakAlive = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      peakAlive = Math.max(peakAlive, (await harness.aliveNodes(GROUP)).length);
      await new Promise((resolve) => setTimeout(resolve, 300));
    }
  })();

  const run = harness.env.runPipeline({
    name: 'over-budget',
    project: 'autoscaler-test',
    steps: ['a', 'b', 'c'].map((id) => ({ id, task: SLEEP, args: [4] })),
  });

  // Three steps want three nodes; the decision adds one and names the budget.
  const capped = await waitUntil(
    'a decision capped by the budget',
    async () => {
      const decision = (await harness.status()).lastTick?.decision.find((d) => d.group === GROUP);
      return decision?.reasons.some((r) => r.startsWith('budget caps scale-up')) ? decision : undefined;
    },
    60_000,
    250,
  );
  expect(capped.desired).toBeGreaterThan(capped.current + capped.add);
  expect(capped.reasons.join('\n')).toMatch(
    /budget caps scale-up \(0\.\d+ of 0\.01 node-hours used\).*adding [01] of [123] wanted/,
  );

  const result = await run;
  sampling = false;
  await sampler;
  expect(Object.values(result.steps).every((s) => s.status === 'succeeded')).toBe(true);
  // Ray's view: never more than the one node the budget pays for.
  expect(peakAlive).toBe(1);
  expect(new Set(Object.values(result.steps).map((s) => s.node)).size).toBe(1);
  const status = await harness.status();
  expect(status.events.filter((e) => e.direction === 'up').reduce((sum, e) => sum + e.count, 0)).toBe(1);
  expect(status.nodeHoursUsed).toBeGreaterThan(0);

  await waitUntil(
    'the node to be reclaimed once idle',
    async () => ((await harness.aliveNodes(GROUP)).length === 0 ? true : undefined),
    60_000,
    250,
  );
}, 300_000); // node starts take far longer on a loaded host than jest's default allows
