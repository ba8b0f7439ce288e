import fc from 'fast-check';
import { decide } from '../../core/autoscaling/policy';
import {
  policyInputSchema,
  type GroupDecision,
  type PolicyInput,
  type PolicyState,
} from '../../core/autoscaling/policy-types';
import { chooseNodeGroup } from '../../core/placement';
import { nodeGroupSchema, type NodeGroup } from '../../core/schemas/node-groups';
import type { Resources } from '../../core/schemas/resources';

const NOW = 1_000_000_000;
const IDLE_TIMEOUT = 60_000;
const COOLDOWN = 30_000;

function makeGroup(
  name: string,
  cpus: number,
  minNodes: number,
  maxNodes: number,
  costPerNodeHour = 0.1,
): NodeGroup {
  return nodeGroupSchema.parse({ name, node: { cpus, memoryMb: 4096 }, minNodes, maxNodes, costPerNodeHour });
}

interface NodeSpec {
  id: string;
  cpus: number;
  /** CPUs free; defaults to all when idle, none when busy. */
  freeCpus?: number;
  /** Idle for this long (ms), or busy. */
  idleForMs: number | 'busy';
  draining?: boolean;
  alive?: boolean;
}

function node(spec: NodeSpec) {
  const busy = spec.idleForMs === 'busy';
  return {
    nodeId: spec.id,
    alive: spec.alive ?? true,
    total: { cpus: spec.cpus, memoryMb: 4096 },
    available: { cpus: spec.freeCpus ?? (busy ? 0 : spec.cpus), memoryMb: 4096 },
    idleSinceMs: spec.idleForMs === 'busy' ? null : NOW - spec.idleForMs,
    draining: spec.draining ?? false,
  };
}

interface GroupSpec {
  group: NodeGroup;
  backlog?: number;
  pendingDemand?: Array<{ resources: Resources; count: number }>;
  running?: number;
  starting?: number;
  nodes?: NodeSpec[];
  backlogAgeSeconds?: number;
  addRate?: number;
  dispatchRate?: number;
}

function input(
  groups: GroupSpec[],
  options: { settings?: Partial<PolicyInput['settings']>; state?: PolicyState; nowMs?: number } = {},
): PolicyInput {
  return policyInputSchema.parse({
    nowMs: options.nowMs ?? NOW,
    groups: groups.map((g) => g.group),
    observations: Object.fromEntries(
      groups.map((g) => [
        g.group.name,
        {
          backlogCount: g.backlog ?? 0,
          backlogAgeSeconds: g.backlogAgeSeconds ?? 0,
          addRate: g.addRate ?? 0,
          dispatchRate: g.dispatchRate ?? 0,
          runningSteps: g.running ?? 0,
          pendingDemand: g.pendingDemand ?? null,
          startingNodes: g.starting ?? 0,
          nodes: (g.nodes ?? []).map(node),
        },
      ]),
    ),
    settings: { idleTimeoutMs: IDLE_TIMEOUT, maxScaleUpStep: 10, cooldownMs: COOLDOWN, ...options.settings },
    state: options.state ?? { groups: {} },
  });
}

function only(decision: ReturnType<typeof decide>, name: string): GroupDecision {
  const found = decision.groups.find((g) => g.group === name);
  if (!found) throw new Error(`no decision for ${name}`);
  return found;
}

const cpu = makeGroup('cpu', 1, 0, 3);

describe('decide: examples', () => {
  it('a burst of 12 one-CPU steps on an empty group of max 3 one-CPU nodes asks for 3 nodes at once', () => {
    const d = only(decide(input([{ group: cpu, backlog: 12 }])), 'cpu');
    expect(d).toMatchObject({ current: 0, desired: 3, add: 3, remove: [] });
    expect(d.reasons).toContain(
      '12 pending step(s), 0 fit on current nodes, 3 more node(s) needed, 9 step(s) wait beyond maxNodes 3',
    );
    expect(d.reasons).toContain('clamped to maxNodes 3');
  });

  it('scales up at once but in bounded steps', () => {
    const wide = makeGroup('wide', 2, 0, 50);
    const d = only(
      decide(input([{ group: wide, backlog: 100 }], { settings: { maxScaleUpStep: 10 } })),
      'wide',
    );
    expect(d).toMatchObject({ desired: 50, add: 10 });
    expect(d.reasons).toContain('adding at most 10 per tick');
  });

  it('places pending steps on free capacity before asking for nodes', () => {
    const two = makeGroup('two', 2, 0, 10);
    const nodes: NodeSpec[] = [
      { id: 'a', cpus: 2, freeCpus: 1, idleForMs: 'busy' },
      { id: 'b', cpus: 2, idleForMs: 5_000 },
    ];
    expect(only(decide(input([{ group: two, backlog: 3, nodes }])), 'two')).toMatchObject({
      desired: 2,
      add: 0,
    });
    expect(only(decide(input([{ group: two, backlog: 4, nodes }])), 'two')).toMatchObject({
      desired: 3,
      add: 1,
    });
  });

  it('packs steps onto few big nodes instead of one node per step', () => {
    const big = makeGroup('big', 4, 0, 10, 0.35);
    expect(only(decide(input([{ group: big, backlog: 3 }])), 'big')).toMatchObject({ desired: 1, add: 1 });
    expect(only(decide(input([{ group: big, backlog: 9 }])), 'big')).toMatchObject({ desired: 3, add: 3 });
  });

  it('packs known requests of different shapes in queue order', () => {
    const four = makeGroup('four', 4, 0, 10);
    const pendingDemand = [
      { resources: { cpus: 3 }, count: 2 },
      { resources: { cpus: 1 }, count: 2 },
    ];
    // 3+1 | 3+1: two nodes, and the two one-CPU steps ride along in the gaps.
    expect(only(decide(input([{ group: four, backlog: 4, pendingDemand }])), 'four')).toMatchObject({
      add: 2,
    });
    // Steps beyond the described ones are default one-CPU steps: 4 more fill a third node.
    expect(only(decide(input([{ group: four, backlog: 8, pendingDemand }])), 'four')).toMatchObject({
      add: 3,
    });
  });

  it('takes the cheaper fit: three one-CPU steps go to three small nodes, not one big node that is cheaper per CPU only when full', () => {
    const small = makeGroup('small', 1, 0, 10, 0.1);
    const big = makeGroup('big', 4, 0, 10, 0.35);
    // Per CPU a full big node costs 0.0875/h against the small node's 0.10/h ...
    expect(big.costPerNodeHour / big.node.cpus).toBeLessThan(small.costPerNodeHour / small.node.cpus);
    // ... but three one-CPU steps cost 0.30/h on small nodes against 0.35/h on a big one.
    const routed = [1, 2, 3].map(() => chooseNodeGroup({ cpus: 1 }, [big, small]));
    expect(routed).toEqual([{ group: 'small' }, { group: 'small' }, { group: 'small' }]);
    const decision = decide(input([{ group: small, backlog: 3 }, { group: big }]));
    expect(only(decision, 'small')).toMatchObject({ add: 3 });
    expect(only(decision, 'big')).toMatchObject({ add: 0 });
    const costPerHour = decision.groups.reduce(
      (sum, g) => sum + g.add * (g.group === 'small' ? small.costPerNodeHour : big.costPerNodeHour),
      0,
    );
    expect(costPerHour).toBeCloseTo(0.3);
    expect(costPerHour).toBeLessThan(big.costPerNodeHour);
  });

  it('does not ask again for nodes that are still starting', () => {
    expect(only(decide(input([{ group: cpu, backlog: 3, starting: 3 }])), 'cpu')).toMatchObject({
      current: 3,
      desired: 3,
      add: 0,
    });
  });

  it('removes only nodes idle longer than the idle timeout, longest idle first', () => {
    const wide = makeGroup('wide', 1, 0, 10);
    const nodes: NodeSpec[] = [
      { id: 'busy', cpus: 1, idleForMs: 'busy' },
      { id: 'fresh', cpus: 1, idleForMs: IDLE_TIMEOUT - 1 },
      { id: 'old', cpus: 1, idleForMs: IDLE_TIMEOUT * 3 },
      { id: 'older', cpus: 1, idleForMs: IDLE_TIMEOUT * 5 },
    ];
    const d = only(decide(input([{ group: wide, nodes, running: 1 }])), 'wide');
    expect(d).toMatchObject({ current: 4, desired: 2, add: 0, remove: ['older', 'old'] });
    expect(d.reasons).toContain('removing 2 node(s) idle longer than 60.0s: older, old');
  });

  it('keeps an idle node that a pending step would use', () => {
    const wide = makeGroup('wide', 1, 0, 10);
    const nodes: NodeSpec[] = [
      { id: 'old', cpus: 1, idleForMs: IDLE_TIMEOUT * 3 },
      { id: 'older', cpus: 1, idleForMs: IDLE_TIMEOUT * 5 },
    ];
    // The most recently idle node takes the step, so the longest idle one can go.
    expect(only(decide(input([{ group: wide, nodes, backlog: 1 }])), 'wide')).toMatchObject({
      desired: 1,
      remove: ['older'],
    });
  });

  it('never goes below what running steps need, even when Ray reports the nodes idle', () => {
    const wide = makeGroup('wide', 1, 0, 10);
    const nodes: NodeSpec[] = ['a', 'b', 'c'].map((id) => ({ id, cpus: 1, idleForMs: IDLE_TIMEOUT * 2 }));
    const d = only(decide(input([{ group: wide, nodes, running: 2 }])), 'wide');
    expect(d).toMatchObject({ desired: 2, remove: ['a'] });
    expect(d.reasons).toContain('running steps need 2 node(s)');
  });

  it('holds a group at minNodes and fills it up to minNodes whatever else holds scale-up back', () => {
    const floor = makeGroup('floor', 1, 2, 5);
    const idle: NodeSpec[] = ['a', 'b'].map((id) => ({ id, cpus: 1, idleForMs: IDLE_TIMEOUT * 9 }));
    expect(only(decide(input([{ group: floor, nodes: idle }])), 'floor')).toMatchObject({
      desired: 2,
      remove: [],
    });
    const justScaledDown: PolicyState = {
      groups: { floor: { lastScaleUpMs: null, lastScaleDownMs: NOW - 1 } },
    };
    const exhausted = { nodeHours: 1, nodeHoursUsed: 5, lookaheadMs: IDLE_TIMEOUT };
    const d = only(
      decide(
        input([{ group: floor, backlog: 5 }], { state: justScaledDown, settings: { budget: exhausted } }),
      ),
      'floor',
    );
    expect(d).toMatchObject({ current: 0, add: 2 });
  });

  it('ignores draining and dead nodes, and never removes them again', () => {
    const wide = makeGroup('wide', 1, 0, 10);
    const nodes: NodeSpec[] = [
      { id: 'draining', cpus: 1, idleForMs: IDLE_TIMEOUT * 9, draining: true },
      { id: 'dead', cpus: 1, idleForMs: IDLE_TIMEOUT * 9, alive: false },
    ];
    const d = only(decide(input([{ group: wide, nodes, backlog: 1 }])), 'wide');
    expect(d).toMatchObject({ current: 0, add: 1, remove: [] });
    expect(d.reasons).toEqual(
      expect.arrayContaining(['1 node(s) draining, not counted', '1 dead node(s) ignored']),
    );
  });

  it('does not scale for steps that no node of the group can hold, and says so', () => {
    const d = only(
      decide(input([{ group: cpu, backlog: 2, pendingDemand: [{ resources: { gpus: 1 }, count: 2 }] }])),
      'cpu',
    );
    expect(d).toMatchObject({ add: 0, infeasibleSteps: 2 });
    expect(d.reasons).toContain('2 pending step(s) can never fit a cpu node: gpus=1 (has 0)');
  });

  it('anticipates a growing queue when asked to', () => {
    const wide = makeGroup('wide', 1, 0, 20);
    const growing = { group: wide, backlog: 2, addRate: 3, dispatchRate: 1 };
    expect(only(decide(input([growing])), 'wide')).toMatchObject({ add: 2 });
    const d = only(decide(input([growing], { settings: { anticipationSeconds: 5 } })), 'wide');
    expect(d).toMatchObject({ add: 10, desired: 12 });
    expect(d.reasons).toContain('anticipating 10 more step(s): queue grows 2.00/s, looking 5s ahead');
  });

  it('shrinks toward a lowered maxNodes only through idle nodes', () => {
    const shrunk = makeGroup('shrunk', 1, 0, 1);
    const nodes: NodeSpec[] = [
      { id: 'busy', cpus: 1, idleForMs: 'busy' },
      { id: 'idle', cpus: 1, idleForMs: IDLE_TIMEOUT * 2 },
      { id: 'busy-too', cpus: 1, idleForMs: 'busy' },
    ];
    expect(only(decide(input([{ group: shrunk, nodes, running: 2 }])), 'shrunk')).toMatchObject({
      desired: 1,
      remove: ['idle'],
    });
  });

  it('holds a group that was not observed', () => {
    const decision = decide({ ...input([{ group: cpu, backlog: 12 }]), observations: {} });
    expect(only(decision, 'cpu')).toMatchObject({
      add: 0,
      remove: [],
      reasons: ['not observed this tick: holding as is'],
    });
  });

  it('remembers when it last scaled each way', () => {
    const up = decide(input([{ group: cpu, backlog: 1 }]));
    expect(up.state.groups.cpu).toEqual({ lastScaleUpMs: NOW, lastScaleDownMs: null });
    const later = NOW + COOLDOWN;
    const down = decide(
      input([{ group: cpu, nodes: [{ id: 'a', cpus: 1, idleForMs: IDLE_TIMEOUT }] }], {
        state: up.state,
        nowMs: later,
      }),
    );
    expect(down.state.groups.cpu).toEqual({ lastScaleUpMs: NOW, lastScaleDownMs: later });
  });
});

describe('decide: cooldown', () => {
  const wide = makeGroup('wide', 1, 0, 10);
  const idleNodes: NodeSpec[] = ['a', 'b'].map((id) => ({ id, cpus: 1, idleForMs: IDLE_TIMEOUT * 2 }));

  it('holds a scale-down within the cooldown after a scale-up', () => {
    const state: PolicyState = { groups: { wide: { lastScaleUpMs: NOW - 10_000, lastScaleDownMs: null } } };
    const d = only(decide(input([{ group: wide, nodes: idleNodes }], { state })), 'wide');
    expect(d).toMatchObject({ desired: 0, remove: [] });
    expect(d.reasons).toContain('scale-down held by cooldown: last scale-up 10.0s ago (cooldown 30.0s)');
    const after = { groups: { wide: { lastScaleUpMs: NOW - COOLDOWN, lastScaleDownMs: null } } };
    expect(only(decide(input([{ group: wide, nodes: idleNodes }], { state: after })), 'wide').remove).toEqual(
      ['a', 'b'],
    );
  });

  it('holds a scale-up within the cooldown after a scale-down, unless the group has no node at all', () => {
    const state: PolicyState = { groups: { wide: { lastScaleUpMs: null, lastScaleDownMs: NOW - 5_000 } } };
    const oneBusy: NodeSpec[] = [{ id: 'a', cpus: 1, idleForMs: 'busy' }];
    const held = only(
      decide(input([{ group: wide, nodes: oneBusy, backlog: 4, running: 1 }], { state })),
      'wide',
    );
    expect(held).toMatchObject({ desired: 5, add: 0 });
    expect(held.reasons).toContain('scale-up held by cooldown: last scale-down 5.0s ago (cooldown 30.0s)');
    const starving = only(decide(input([{ group: wide, backlog: 4 }], { state })), 'wide');
    expect(starving).toMatchObject({ add: 4 });
    expect(starving.reasons).toContain('cooldown overridden: pending work and no node to run it');
  });
});

describe('decide: budget', () => {
  const wide = makeGroup('wide', 1, 0, 100);

  it('caps scale-up at what the rest of the budget pays for, and says why', () => {
    // 2 node-hours left over a 30 min lookahead pay for 4 nodes; 1 runs already.
    const budget = { nodeHours: 10, nodeHoursUsed: 8, lookaheadMs: 30 * 60_000 };
    const nodes: NodeSpec[] = [{ id: 'a', cpus: 1, idleForMs: 'busy' }];
    const d = only(
      decide(input([{ group: wide, nodes, running: 1, backlog: 20 }], { settings: { budget } })),
      'wide',
    );
    expect(d).toMatchObject({ desired: 21, add: 3 });
    expect(d.reasons).toContain(
      'budget caps scale-up (8.00 of 10 node-hours used): the rest pays for 4 node(s) over the next 1800.0s, 1 counted already; adding 3 of 10 wanted',
    );
  });

  it('stops scale-up when the budget is spent', () => {
    const budget = { nodeHours: 10, nodeHoursUsed: 10.5, lookaheadMs: 60_000 };
    const d = only(decide(input([{ group: wide, backlog: 20 }], { settings: { budget } })), 'wide');
    expect(d.add).toBe(0);
    expect(d.reasons).toContain('budget exhausted (10.50 of 10 node-hours used): adding none of 10 wanted');
  });

  it('gives the room to the longest waiting backlog first', () => {
    const other = makeGroup('other', 1, 0, 100);
    const budget = { nodeHours: 10, nodeHoursUsed: 9, lookaheadMs: 15 * 60_000 }; // room for 4
    const decision = decide(
      input(
        [
          { group: wide, backlog: 3, backlogAgeSeconds: 5 },
          { group: other, backlog: 3, backlogAgeSeconds: 50 },
        ],
        { settings: { budget } },
      ),
    );
    expect(only(decision, 'other').add).toBe(3);
    expect(only(decision, 'wide').add).toBe(1);
  });
});

// ---- properties -------------------------------------------------------------

const nodeSpecArb = (cpus: number, index: number): fc.Arbitrary<NodeSpec> =>
  fc.record({
    id: fc.constant(`n${index}`),
    cpus: fc.constant(cpus),
    freeCpus: fc.integer({ min: 0, max: cpus }),
    idleForMs: fc.oneof(fc.constant<'busy'>('busy'), fc.integer({ min: 0, max: 3 * IDLE_TIMEOUT })),
    draining: fc.boolean(),
    alive: fc.boolean(),
  });

const scenarioArb = fc
  .record({
    cpus: fc.integer({ min: 1, max: 8 }),
    minNodes: fc.integer({ min: 0, max: 5 }),
    span: fc.integer({ min: 0, max: 20 }),
    nodeCount: fc.integer({ min: 0, max: 25 }),
    backlog: fc.integer({ min: 0, max: 300 }),
    running: fc.integer({ min: 0, max: 60 }),
    starting: fc.integer({ min: 0, max: 3 }),
    maxScaleUpStep: fc.integer({ min: 1, max: 15 }),
    lastUpAgo: fc.option(fc.integer({ min: 0, max: 2 * COOLDOWN })),
    lastDownAgo: fc.option(fc.integer({ min: 0, max: 2 * COOLDOWN })),
  })
  .chain((s) =>
    fc.record({
      scenario: fc.constant(s),
      nodes: fc.tuple(...Array.from({ length: s.nodeCount }, (_, i) => nodeSpecArb(s.cpus, i))),
    }),
  )
  .map(({ scenario: s, nodes }) => {
    const group = makeGroup('g', s.cpus, s.minNodes, s.minNodes + s.span);
    const state: PolicyState = {
      groups: {
        g: {
          lastScaleUpMs: s.lastUpAgo === null ? null : NOW - s.lastUpAgo,
          lastScaleDownMs: s.lastDownAgo === null ? null : NOW - s.lastDownAgo,
        },
      },
    };
    const spec: GroupSpec = { group, backlog: s.backlog, running: s.running, starting: s.starting, nodes };
    return { group, spec, state, settings: { maxScaleUpStep: s.maxScaleUpStep } };
  });

describe('decide: properties', () => {
  it('never aims or grows above maxNodes, nor aims below minNodes, and always fills up to minNodes', () => {
    fc.assert(
      fc.property(scenarioArb, ({ group, spec, state, settings }) => {
        const d = only(decide(input([spec], { state, settings })), 'g');
        expect(d.desired).toBeLessThanOrEqual(group.maxNodes);
        expect(d.desired).toBeGreaterThanOrEqual(group.minNodes);
        expect(d.current + d.add).toBeLessThanOrEqual(Math.max(group.maxNodes, d.current));
        expect(d.current + d.add).toBeGreaterThanOrEqual(Math.min(group.minNodes, d.current + d.add));
        if (d.current < group.minNodes) expect(d.current + d.add).toBeGreaterThanOrEqual(group.minNodes);
        if (d.add > 0) expect(d.remove).toEqual([]);
      }),
    );
  });

  it('removes only usable nodes idle longer than the idle timeout: never a busy, draining or dead node', () => {
    fc.assert(
      fc.property(scenarioArb, ({ spec, state, settings }) => {
        const d = only(decide(input([spec], { state, settings })), 'g');
        const byId = new Map((spec.nodes ?? []).map((n) => [n.id, n]));
        expect(new Set(d.remove).size).toBe(d.remove.length);
        for (const id of d.remove) {
          const n = byId.get(id);
          expect(n).toBeDefined();
          expect(n?.idleForMs).not.toBe('busy');
          expect(n?.draining).toBe(false);
          expect(n?.alive).toBe(true);
          expect(n?.idleForMs as number).toBeGreaterThanOrEqual(IDLE_TIMEOUT);
        }
      }),
    );
  });

  it('never removes below minNodes nor below what running steps need', () => {
    fc.assert(
      fc.property(scenarioArb, ({ group, spec, state, settings }) => {
        const d = only(decide(input([spec], { state, settings })), 'g');
        const remaining = d.current - d.remove.length;
        const runningNeeds = Math.ceil((spec.running ?? 0) / group.node.cpus);
        expect(remaining).toBeGreaterThanOrEqual(Math.min(d.current, Math.max(group.minNodes, runningNeeds)));
      }),
    );
  });

  it('is monotone in the backlog: more pending steps never ask for fewer nodes', () => {
    fc.assert(
      fc.property(scenarioArb, fc.integer({ min: 1, max: 200 }), ({ spec, state, settings }, more) => {
        const before = only(decide(input([spec], { state, settings })), 'g');
        const after = only(
          decide(input([{ ...spec, backlog: (spec.backlog ?? 0) + more }], { state, settings })),
          'g',
        );
        expect(after.desired).toBeGreaterThanOrEqual(before.desired);
        expect(after.add).toBeGreaterThanOrEqual(before.add);
        expect(after.remove.length).toBeLessThanOrEqual(before.remove.length);
      }),
    );
  });

  it('is monotone when requests of any shape join the back of the queue', () => {
    const shapeArb = fc.record({
      resources: fc.record({ cpus: fc.constantFrom(0.5, 1, 1.5, 2, 3) }),
      count: fc.integer({ min: 1, max: 20 }),
    });
    fc.assert(
      fc.property(
        fc.array(shapeArb, { maxLength: 6 }),
        fc.array(shapeArb, { minLength: 1, maxLength: 4 }),
        fc.integer({ min: 0, max: 6 }),
        (queued, joining, idleNodes) => {
          const group = makeGroup('g', 3, 0, 30);
          const nodes: NodeSpec[] = Array.from({ length: idleNodes }, (_, i) => ({
            id: `n${i}`,
            cpus: 3,
            freeCpus: i % 4,
            idleForMs: i % 2 === 0 ? 'busy' : IDLE_TIMEOUT * 2,
          }));
          const count = (list: typeof queued) => list.reduce((sum, r) => sum + r.count, 0);
          const settings = { maxScaleUpStep: 100 };
          const before = only(
            decide(input([{ group, nodes, pendingDemand: queued, backlog: count(queued) }], { settings })),
            'g',
          );
          const longer = [...queued, ...joining];
          const after = only(
            decide(input([{ group, nodes, pendingDemand: longer, backlog: count(longer) }], { settings })),
            'g',
          );
          expect(after.desired).toBeGreaterThanOrEqual(before.desired);
        },
      ),
    );
  });

  it('never reverses direction within the cooldown, except to give a group with no node its first one', () => {
    const tickArb = fc.record({
      gapMs: fc.integer({ min: 1_000, max: 20_000 }),
      backlog: fc.integer({ min: 0, max: 8 }),
      idleNodes: fc.integer({ min: 0, max: 4 }),
      busyNodes: fc.integer({ min: 0, max: 2 }),
    });
    fc.assert(
      fc.property(fc.array(tickArb, { minLength: 2, maxLength: 40 }), (ticks) => {
        const group = makeGroup('g', 1, 0, 8);
        let state: PolicyState = { groups: {} };
        let nowMs = NOW;
        const events: Array<{ atMs: number; direction: 'up' | 'down'; current: number }> = [];
        for (const t of ticks) {
          nowMs += t.gapMs;
          const nodes: NodeSpec[] = [
            ...Array.from({ length: t.busyNodes }, (_, i) => ({
              id: `b${i}`,
              cpus: 1,
              idleForMs: 'busy' as const,
            })),
            ...Array.from({ length: t.idleNodes }, (_, i) => ({
              id: `i${i}`,
              cpus: 1,
              idleForMs: 2 * IDLE_TIMEOUT,
            })),
          ];
          const decision = decide(input([{ group, backlog: t.backlog, nodes }], { state, nowMs }));
          const d = only(decision, 'g');
          if (d.add > 0) events.push({ atMs: nowMs, direction: 'up', current: d.current });
          if (d.remove.length > 0) events.push({ atMs: nowMs, direction: 'down', current: d.current });
          state = decision.state;
        }
        for (let i = 1; i < events.length; i++) {
          const [previous, event] = [events[i - 1], events[i]] as [(typeof events)[0], (typeof events)[0]];
          if (previous.direction === event.direction) continue;
          const starving = event.direction === 'up' && event.current === 0;
          if (!starving) expect(event.atMs - previous.atMs).toBeGreaterThanOrEqual(COOLDOWN);
        }
      }),
    );
  });

  it('says why whenever the budget holds scale-up back', () => {
    fc.assert(
      fc.property(
        scenarioArb,
        fc.double({ min: 0, max: 12, noNaN: true }),
        ({ group, spec, state, settings }, used) => {
          const budget = { nodeHours: 10, nodeHoursUsed: used, lookaheadMs: 15 * 60_000 };
          const free = only(decide(input([spec], { state, settings })), 'g');
          const capped = only(decide(input([spec], { state, settings: { ...settings, budget } })), 'g');
          expect(capped.add).toBeLessThanOrEqual(free.add);
          expect(capped.add).toBeGreaterThanOrEqual(Math.max(0, group.minNodes - capped.current));
          if (capped.add < free.add) expect(capped.reasons.some((r) => r.startsWith('budget'))).toBe(true);
        },
      ),
    );
  });
});
