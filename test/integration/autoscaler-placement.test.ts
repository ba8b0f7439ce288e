/**
 * Two node types: `as-small` (1 CPU, 0.05 per node-hour) and `as-big` (4 CPUs,
 * 0.16 per node-hour: cheaper per CPU, but only when full). Three one-CPU
 * steps cost 0.15 an hour on small nodes and 0.16 on a big one, so they take
 * the cheaper fit: they are routed to the small group, the autoscaler grows
 * only that group, and Ray never sees a big node.
 */
import { startAutoscalerHarness, type AutoscalerHarness } from '../helpers/autoscaler-harness';
import { waitUntil } from '../helpers/test-env';

const NODE_INFO = 'pantheon_tasks.testkit:node';

let harness: AutoscalerHarness;
beforeAll(async () => {
  harness = await startAutoscalerHarness('placement');
});
afterAll(async () => {
  await harness?.close();
});

test('three one-CPU steps run on the cheaper small nodes; no big node is started', async () => {
  const [small, big] = harness.groups;
  expect(small!.name).toBe('as-small');
  expect(big!.name).toBe('as-big');
  // The fixture's premise: big is cheaper per CPU, yet dearer than three small nodes.
  expect(big!.costPerNodeHour / big!.node.cpus).toBeLessThan(small!.costPerNodeHour / small!.node.cpus);
  expect(3 * small!.costPerNodeHour).toBeLessThan(big!.costPerNodeHour);

  await harness.startAutoscaler({ tickIntervalMs: 1_000, idleTimeoutMs: 5_000, cooldownMs: 2_000 });
  const result = await harness.env.runPipeline({
    name: 'cheaper-fit',
    project: 'autoscaler-test',
    steps: ['a', 'b', 'c'].map((id) => ({ id, task: NODE_INFO, resources: { cpus: 1 } })),
  });

  for (const step of Object.values(result.steps)) {
    expect(step.status).toBe('succeeded');
    expect((step.output as { labels: Record<string, string> }).labels['pantheon.io/group']).toBe('as-small');
  }
  const status = await harness.status();
  expect(status.events.filter((e) => e.group === 'as-big')).toEqual([]);
  expect(status.events.some((e) => e.group === 'as-small' && e.direction === 'up')).toBe(true);
  expect(status.lastTick?.decision.find((d) => d.group === 'as-big')).toMatchObject({
    current: 0,
    desired: 0,
  });
  expect(await harness.nodesEverSeen('as-big')).toEqual([]);

  // The small nodes go once idle; still no big node.
  await waitUntil(
    'the small group to be empty again',
    async () => ((await harness.aliveNodes('as-small')).length === 0 ? true : undefined),
    120_000,
    500,
  );
  expect(await harness.nodesEverSeen('as-big')).toEqual([]);
}, 300_000); // node starts take far longer on a loaded host than jest's default allows
