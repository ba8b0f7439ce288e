import { chooseNodeGroup, nodeShortfall, requestedAmounts } from '../../core/placement';
import { nodeGroupSchema, type NodeGroup } from '../../core/schemas/node-groups';

function group(
  name: string,
  node: Record<string, unknown>,
  costPerNodeHour: number,
  maxNodes = 4,
): NodeGroup {
  return nodeGroupSchema.parse({
    name,
    node: { memoryMb: 4096, ...node },
    minNodes: 0,
    maxNodes,
    costPerNodeHour,
  });
}

const small = group('small', { cpus: 1 }, 0.1);
const big = group('big', { cpus: 4, memoryMb: 16384 }, 0.35);
const gpu = group('gpu', { cpus: 8, gpus: 1, labels: { accelerator: 't4' } }, 1.2);
const tpu = group('tpu', { cpus: 2, custom: { TPU: 4 }, diskGb: 100 }, 2);

describe('chooseNodeGroup', () => {
  it('sends a step that fits several groups to the cheapest node, not the biggest', () => {
    expect(chooseNodeGroup({ cpus: 1 }, [big, small, gpu])).toEqual({ group: 'small' });
  });

  it('counts a step with no explicit cpus as one CPU, as Ray does', () => {
    const noCpu = group('no-cpu', { cpus: 0, gpus: 1 }, 0.01);
    expect(chooseNodeGroup({}, [noCpu, small])).toEqual({ group: 'small' });
    expect(chooseNodeGroup({ cpus: 0, gpus: 1 }, [noCpu, gpu])).toEqual({ group: 'no-cpu' });
  });

  it('passes over groups whose node is too small', () => {
    expect(chooseNodeGroup({ cpus: 2 }, [small, big])).toEqual({ group: 'big' });
    expect(chooseNodeGroup({ cpus: 1, memoryMb: 8000 }, [small, big])).toEqual({ group: 'big' });
    expect(chooseNodeGroup({ gpus: 1 }, [small, big, gpu])).toEqual({ group: 'gpu' });
    expect(chooseNodeGroup({ custom: { TPU: 2 }, diskGb: 50 }, [small, big, gpu, tpu])).toEqual({
      group: 'tpu',
    });
  });

  it('treats the custom resource disk_gb as diskGb', () => {
    expect(chooseNodeGroup({ custom: { disk_gb: 50 } }, [small, tpu])).toEqual({ group: 'tpu' });
  });

  it('breaks cost ties by name', () => {
    const twinA = group('twin-a', { cpus: 2 }, 0.2);
    const twinB = group('twin-b', { cpus: 2 }, 0.2);
    expect(chooseNodeGroup({ cpus: 2 }, [twinB, twinA])).toEqual({ group: 'twin-a' });
  });

  it('matches label requests against the group labels and ignores ray.io/ labels', () => {
    expect(chooseNodeGroup({ labels: { accelerator: 't4' } }, [small, gpu])).toEqual({ group: 'gpu' });
    expect(chooseNodeGroup({ labels: { 'ray.io/node-id': 'abc123' } }, [big, small])).toEqual({
      group: 'small',
    });
    expect(chooseNodeGroup({ labels: { 'ray.io/anything': 'x' } }, [small])).toEqual({ group: 'small' });
  });

  it('lets zero requests fit anything', () => {
    const noCpu = group('no-cpu', { cpus: 0 }, 0.01);
    expect(chooseNodeGroup({ cpus: 0, gpus: 0, memoryMb: 0, custom: { TPU: 0 } }, [small, noCpu])).toEqual({
      group: 'no-cpu',
    });
  });

  it('never chooses a group that may have no nodes', () => {
    const disabled = group('disabled', { cpus: 64 }, 0, 0);
    expect(chooseNodeGroup({ cpus: 1 }, [disabled, big])).toEqual({ group: 'big' });
  });

  describe('names exactly what is short when no group fits', () => {
    const groups = [small, big, gpu];
    it.each([
      [{ gpus: 64 }, 'no node group can hold gpus=64 (largest: 1)'],
      [{ cpus: 32 }, 'no node group can hold cpus=32 (largest: 8)'],
      [{ memoryMb: 100_000 }, 'no node group can hold memoryMb=100000 (largest: 16384)'],
      [{ diskGb: 10 }, 'no node group can hold diskGb=10 (largest: 0)'],
      [{ custom: { TPU: 1 } }, 'no node group can hold custom TPU=1 (largest: 0)'],
      [{ labels: { accelerator: 'a100' } }, 'no node group has label accelerator=a100 (found: t4)'],
      [{ labels: { zone: 'eu' } }, 'no node group has label zone=eu (found: none)'],
    ])('%j', (request, message) => {
      expect(chooseNodeGroup(request, groups)).toEqual({ infeasible: message });
    });

    it('with no GPU group at all, the largest is 0', () => {
      expect(chooseNodeGroup({ gpus: 64 }, [small, big])).toEqual({
        infeasible: 'no node group can hold gpus=64 (largest: 0)',
      });
    });

    it('says what each group lacks when only the combination is short', () => {
      expect(chooseNodeGroup({ cpus: 4, labels: { accelerator: 't4' }, memoryMb: 8192 }, [big, gpu])).toEqual(
        {
          infeasible:
            'no node group can hold the whole request at once: big lacks label accelerator=t4 (has none); gpu lacks memoryMb=8192 (has 4096)',
        },
      );
    });

    it('says so when no group can have nodes', () => {
      expect(chooseNodeGroup({}, [])).toEqual({
        infeasible: 'no node group can have nodes (none configured with maxNodes > 0)',
      });
    });
  });
});

describe('requestedAmounts and nodeShortfall', () => {
  it('lists requested amounts in a fixed order, zero amounts left out', () => {
    expect(requestedAmounts({ custom: { b: 1, a: 2, z: 0 }, gpus: 1, memoryMb: 0 })).toEqual([
      { name: 'cpus', amount: 1 },
      { name: 'gpus', amount: 1 },
      { name: 'custom a', amount: 2 },
      { name: 'custom b', amount: 1 },
    ]);
  });

  it('reports the first shortfall of a node, or null when it fits', () => {
    expect(nodeShortfall({ cpus: 2 }, small.node)).toBe('cpus=2 (has 1)');
    expect(nodeShortfall({ cpus: 1 }, small.node)).toBeNull();
  });
});
