import fc from 'fast-check';
import {
  FAILURE_KINDS,
  MEMORY_GROWTH_FACTOR,
  planAttempt,
  type AttemptPolicyConfig,
  type PriorTry,
} from '../../activities/ray/attempt-policy';
import { toRayOptions } from '../../activities/ray/ray-options';

const config: AttemptPolicyConfig = { memoryCapMb: 2048, firstOomMemoryMb: 1024 };

function tried(outcome: PriorTry['outcome'], node: string | null, memoryMb: number | null, n = 1): PriorTry {
  return { generation: n, attempt: n, outcome, node, memoryMb };
}

describe('planAttempt: examples', () => {
  test('a first attempt asks for exactly what the step asks for', () => {
    expect(planAttempt('s', { cpus: 1, memoryMb: 512 }, [], config)).toEqual({
      ok: true,
      resources: { cpus: 1, memoryMb: 512 },
      avoidNodes: [],
    });
  });

  test('after an OOM the memory doubles, and the growth is reported', () => {
    const plan = planAttempt('s', { memoryMb: 512 }, [tried('oom', 'n1', 512)], config);
    expect(plan).toMatchObject({ ok: true, resources: { memoryMb: 1024 }, grewMemoryFromMb: 512 });
  });

  test('doubling stops at the cap, then the next OOM fails for good, naming the cap', () => {
    const tries = [tried('oom', 'n1', 512, 1), tried('oom', 'n1', 1024, 2)];
    expect(planAttempt('s', { memoryMb: 512 }, tries, config)).toMatchObject({
      resources: { memoryMb: 2048 },
    });
    const atCap = planAttempt('s', { memoryMb: 512 }, [...tries, tried('oom', 'n2', 2048, 3)], config);
    expect(atCap).toEqual({
      ok: false,
      type: 'StepMemoryCapReached',
      message: expect.stringMatching(/step "s" ran out of memory with memoryMb=2048, the cap \(2048 MB/),
    });
  });

  test('growth that would pass the cap is clamped to it', () => {
    const plan = planAttempt('s', { memoryMb: 1500 }, [tried('oom', 'n1', 1500)], config);
    expect(plan).toMatchObject({ ok: true, resources: { memoryMb: 2048 } });
  });

  test('a step that asked for no memory gets the configured first size after an OOM', () => {
    expect(planAttempt('s', {}, [tried('oom', 'n1', null)], config)).toMatchObject({
      ok: true,
      resources: { memoryMb: 1024 },
      grewMemoryFromMb: null,
    });
  });

  test('nodes that died under the step are avoided, each once, in order; a crashed worker is not', () => {
    const tries = [
      tried('node_lost', 'a', null, 1),
      tried('worker_crashed', 'b', null, 2),
      tried('node_lost', 'c', null, 3),
      tried('node_lost', 'a', null, 4),
    ];
    const plan = planAttempt('s', {}, tries, config);
    expect(plan).toMatchObject({ ok: true, avoidNodes: ['a', 'c'] });
    if (plan.ok)
      expect(toRayOptions(plan.resources, plan.avoidNodes).label_selector).toEqual({
        'ray.io/node-id': '!in(a,c)',
      });
  });

  test('memory grown by an OOM is kept by the attempt after a node loss', () => {
    const tries = [tried('oom', 'a', 512, 1), tried('node_lost', 'b', 1024, 2)];
    expect(planAttempt('s', { memoryMb: 512 }, tries, config)).toMatchObject({
      ok: true,
      resources: { memoryMb: 1024 },
      avoidNodes: ['b'],
    });
  });

  test('a request above the configured cap is never shrunk, and fails at once on OOM', () => {
    expect(planAttempt('s', { memoryMb: 4096 }, [tried('oom', 'a', 4096)], config)).toMatchObject({
      ok: false,
      message: expect.stringContaining('memoryMb=4096'),
    });
  });
});

const tryArb = fc.record({
  generation: fc.nat(50),
  attempt: fc.nat(50),
  outcome: fc.constantFrom('succeeded' as const, ...FAILURE_KINDS),
  node: fc.option(fc.constantFrom('n1', 'n2', 'n3', 'n4'), { nil: null }),
  memoryMb: fc.option(fc.integer({ min: 1, max: 10_000 }), { nil: null }),
});
const baseArb = fc.record(
  { cpus: fc.integer({ min: 0, max: 8 }), memoryMb: fc.integer({ min: 1, max: 5000 }) },
  { requiredKeys: ['cpus'] },
);
const configArb = fc.record({
  memoryCapMb: fc.integer({ min: 1, max: 8192 }),
  firstOomMemoryMb: fc.integer({ min: 1, max: 4096 }),
});

describe('planAttempt: properties', () => {
  test('memory never shrinks below the request or below any earlier try', () => {
    fc.assert(
      fc.property(baseArb, fc.array(tryArb, { maxLength: 8 }), configArb, (base, tries, cfg) => {
        const plan = planAttempt('s', base, tries, cfg);
        if (!plan.ok) return;
        const floor = Math.max(base.memoryMb ?? 0, ...tries.map((t) => t.memoryMb ?? 0));
        expect(plan.resources.memoryMb ?? 0).toBeGreaterThanOrEqual(floor);
      }),
    );
  });

  test('growth never passes the cap (unless the step itself asked for more)', () => {
    fc.assert(
      fc.property(
        baseArb,
        fc.array(tryArb, { minLength: 1, maxLength: 8 }),
        configArb,
        (base, tries, cfg) => {
          const plan = planAttempt('s', base, tries, cfg);
          const last = tries[tries.length - 1];
          if (!plan.ok || last?.outcome !== 'oom') return;
          expect(plan.resources.memoryMb).toBeLessThanOrEqual(Math.max(cfg.memoryCapMb, base.memoryMb ?? 0));
        },
      ),
    );
  });

  test('after an OOM the plan grows the memory strictly, or refuses', () => {
    fc.assert(
      fc.property(baseArb, fc.array(tryArb, { maxLength: 6 }), configArb, (base, earlier, cfg) => {
        const before = Math.max(base.memoryMb ?? 0, ...earlier.map((t) => t.memoryMb ?? 0));
        const tries = [...earlier, tried('oom', 'n1', before > 0 ? before : null)];
        const plan = planAttempt('s', base, tries, cfg);
        if (plan.ok) expect(plan.resources.memoryMb ?? 0).toBeGreaterThan(before);
        else expect(plan.type).toBe('StepMemoryCapReached');
      }),
    );
  });

  test('it refuses only right after an OOM, and the doubling chain reaches the cap in few steps', () => {
    fc.assert(
      fc.property(baseArb, fc.array(tryArb, { maxLength: 8 }), configArb, (base, tries, cfg) => {
        const plan = planAttempt('s', base, tries, cfg);
        if (!plan.ok) expect(tries[tries.length - 1]?.outcome).toBe('oom');
      }),
    );
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 4096 }), configArb, (start, cfg) => {
        let tries: PriorTry[] = [];
        let memory = start;
        for (let i = 1; i < 40; i++) {
          tries = [...tries, tried('oom', 'n', memory, i)];
          const plan = planAttempt('s', { memoryMb: start }, tries, cfg);
          if (!plan.ok) return;
          expect(plan.resources.memoryMb).toBeLessThanOrEqual(Math.max(memory * MEMORY_GROWTH_FACTOR, start));
          memory = plan.resources.memoryMb ?? 0;
        }
        throw new Error('the doubling chain never reached the cap');
      }),
    );
  });

  test('avoided nodes are exactly the nodes of node_lost tries', () => {
    fc.assert(
      fc.property(baseArb, fc.array(tryArb, { maxLength: 10 }), configArb, (base, tries, cfg) => {
        const plan = planAttempt('s', base, tries, cfg);
        if (!plan.ok) return;
        const lost = new Set(tries.filter((t) => t.outcome === 'node_lost' && t.node).map((t) => t.node));
        expect(new Set(plan.avoidNodes)).toEqual(lost);
        expect(plan.avoidNodes).toHaveLength(lost.size);
      }),
    );
  });

  test('the plan depends only on its inputs', () => {
    fc.assert(
      fc.property(baseArb, fc.array(tryArb, { maxLength: 8 }), configArb, (base, tries, cfg) => {
        expect(planAttempt('s', base, tries, cfg)).toEqual(
          planAttempt('s', { ...base }, [...tries], { ...cfg }),
        );
      }),
    );
  });
});
