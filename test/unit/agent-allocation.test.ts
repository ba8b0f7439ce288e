import fc from 'fast-check';
import { allocateStepResources, learnedMemoryMb, MEMORY_HEADROOM } from '../../core/agent-allocation';
import { nodeGroupSchema } from '../../core/schemas/node-groups';
import type { AgentPerformanceSummary } from '../../core/schemas/pipeline-spec';

const nodeGroups = [
  nodeGroupSchema.parse({
    name: 'cpu',
    node: { cpus: 2, memoryMb: 2048 },
    minNodes: 1,
    maxNodes: 2,
    costPerNodeHour: 1,
  }),
];
const observed = (peakMemoryMb: number | null): AgentPerformanceSummary => ({
  agent: 'x',
  runs: 3,
  attempts: 3,
  failedAttempts: 0,
  failureRate: 0,
  meanDurationMs: 1000,
  maxDurationMs: 1200,
  peakMemoryMb,
  meanCpuSeconds: 0.5,
  updatedAtMs: 1,
});

describe('allocateStepResources', () => {
  it('explicit step resources win, merged over the agent defaults', () => {
    expect(
      allocateStepResources({
        stepResources: { memoryMb: 512 },
        agentResources: { cpus: 2, memoryMb: 128 },
        observed: observed(900),
        nodeGroups,
      }),
    ).toEqual({ resources: { cpus: 2, memoryMb: 512 }, allocation: 'explicit' });
  });

  it('without a record, the agent defaults apply', () => {
    expect(
      allocateStepResources({ agentResources: { cpus: 1, memoryMb: 256 }, observed: null, nodeGroups }),
    ).toEqual({
      resources: { cpus: 1, memoryMb: 256 },
      allocation: 'agent-default',
    });
  });

  it('with a record, the step asks for the observed peak with headroom, keeping the agent CPUs', () => {
    expect(
      allocateStepResources({
        agentResources: { cpus: 1, memoryMb: 256 },
        observed: observed(300),
        nodeGroups,
      }),
    ).toEqual({
      resources: { cpus: 1, memoryMb: 384 },
      allocation: 'observed',
    });
  });

  it('falls back to the defaults, saying why, when the learned request fits no node', () => {
    const result = allocateStepResources({
      agentResources: { cpus: 1 },
      observed: observed(1900),
      nodeGroups,
    });
    expect(result.allocation).toBe('agent-default');
    expect(result.note).toMatch(/does not fit a node/);
  });

  it('a plain task step without resources gets Ray defaults', () => {
    expect(allocateStepResources({ observed: null, nodeGroups })).toEqual({
      resources: {},
      allocation: 'default',
    });
  });

  it('learned memory always covers the peak with headroom, in 16 MB steps, never under 64 MB', () => {
    fc.assert(
      fc.property(fc.double({ min: 0.1, max: 100_000, noNaN: true }), (peak) => {
        const mb = learnedMemoryMb(peak);
        expect(mb).toBeGreaterThanOrEqual(peak * MEMORY_HEADROOM);
        expect(mb % 16).toBe(0);
        expect(mb).toBeGreaterThanOrEqual(64);
        expect(mb - peak * MEMORY_HEADROOM).toBeLessThan(Math.max(16, 64 - peak * MEMORY_HEADROOM + 16));
      }),
    );
  });
});
