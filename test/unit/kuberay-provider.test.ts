/**
 * The `kuberay` provider against a local stand-in for the Kubernetes API
 * server (test/helpers/kube-api-server.ts) that checks every request against
 * the RayCluster schema: no Kubernetes API server can be installed here.
 */
import { KubeConfig } from '@kubernetes/client-node';
import { KubeRayNodeProvider, workerGroupPatch } from '../../activities/scaling/providers/kuberay/provider';
import { nodeGroupSchema, type NodeGroup } from '../../core/schemas/node-groups';
import { startFakeKubeApiServer, type FakeKubeApiServer, type FakePod } from '../helpers/kube-api-server';

const NAMESPACE = 'ml';
const CLUSTER = 'pantheon';
const TOKEN = 'test-token';
const PATCH_PATH = `/apis/ray.io/v1/namespaces/${NAMESPACE}/rayclusters/${CLUSTER}`;

const cpu: NodeGroup = nodeGroupSchema.parse({
  name: 'cpu',
  provider: 'kuberay',
  node: { cpus: 2, memoryMb: 4096 },
  minNodes: 0,
  maxNodes: 3,
  costPerNodeHour: 0.1,
});

function rayCluster(overrides: { enableInTreeAutoscaling?: boolean } = {}) {
  return {
    apiVersion: 'ray.io/v1',
    kind: 'RayCluster',
    metadata: { name: CLUSTER, namespace: NAMESPACE, resourceVersion: '7', generation: 1 },
    spec: {
      ...overrides,
      headGroupSpec: { rayStartParams: {}, template: { spec: { containers: [] } } },
      workerGroupSpecs: [
        { groupName: 'gpu', replicas: 0, minReplicas: 0, maxReplicas: 2, rayStartParams: {} },
        { groupName: 'cpu', replicas: 2, minReplicas: 0, maxReplicas: 3, rayStartParams: {} },
      ],
    },
  };
}

const runningPods: FakePod[] = [
  { name: 'cpu-a', group: 'cpu', phase: 'Running', ip: '10.0.0.1' },
  { name: 'cpu-b', group: 'cpu', phase: 'Running', ip: '10.0.0.2' },
];

let server: FakeKubeApiServer | undefined;
let provider: KubeRayNodeProvider;
let kubeConfig: KubeConfig;

async function start(cluster = rayCluster(), pods: FakePod[] = runningPods.map((p) => ({ ...p }))) {
  const started = await startFakeKubeApiServer({
    namespace: NAMESPACE,
    rayCluster: cluster,
    pods,
    token: TOKEN,
  });
  server = started;
  kubeConfig = new KubeConfig();
  kubeConfig.loadFromOptions({
    clusters: [{ name: 'fake', server: started.url, skipTLSVerify: true }],
    users: [{ name: 'autoscaler', token: TOKEN }],
    contexts: [{ name: 'fake', cluster: 'fake', user: 'autoscaler', namespace: NAMESPACE }],
    currentContext: 'fake',
  });
  provider = new KubeRayNodeProvider({ kubeConfig, namespace: NAMESPACE, clusterName: CLUSTER });
}

function cpuGroupSpec() {
  const spec = api().rayCluster().spec as { workerGroupSpecs: Array<Record<string, unknown>> };
  return spec.workerGroupSpecs[1];
}

function patches() {
  return api().requests.filter((r) => r.method === 'PATCH');
}

afterEach(async () => {
  await server?.close();
  server = undefined;
});

/** The server of the running test. */
function api(): FakeKubeApiServer {
  if (!server) throw new Error('no stand-in API server is running');
  return server;
}

describe('kuberay provider', () => {
  it('lists the worker pods of the group as nodes', async () => {
    await start(rayCluster(), [
      ...runningPods,
      { name: 'cpu-new', group: 'cpu', phase: 'Pending' },
      { name: 'cpu-gone', group: 'cpu', phase: 'Running', terminating: true },
      { name: 'gpu-a', group: 'gpu', phase: 'Running' },
    ]);
    expect(await provider.listNodes(cpu)).toEqual([
      { nodeId: 'cpu-a', state: 'running', address: '10.0.0.1' },
      { nodeId: 'cpu-b', state: 'running', address: '10.0.0.2' },
      { nodeId: 'cpu-new', state: 'starting' },
      { nodeId: 'cpu-gone', state: 'stopping' },
    ]);
  });

  it('scales up with a JSON Patch on the replicas of the right worker group', async () => {
    await start();
    await provider.addNodes(cpu, 1);

    const [patch] = patches();
    expect(patch?.path).toBe(PATCH_PATH);
    expect(patch?.contentType).toBe('application/json-patch+json');
    expect(patch?.status).toBe(200);
    expect(patch?.body).toEqual([
      { op: 'test', path: '/spec/workerGroupSpecs/1/groupName', value: 'cpu' },
      { op: 'test', path: '/spec/workerGroupSpecs/1/replicas', value: 2 },
      { op: 'replace', path: '/spec/workerGroupSpecs/1/replicas', value: 3 },
      { op: 'add', path: '/spec/workerGroupSpecs/1/scaleStrategy', value: { workersToDelete: [] } },
    ]);
    expect(cpuGroupSpec()).toMatchObject({ replicas: 3, scaleStrategy: { workersToDelete: [] } });

    api().reconcile();
    const nodes = await provider.listNodes(cpu);
    expect(nodes).toHaveLength(3);
    expect(nodes.filter((n) => n.state === 'starting')).toHaveLength(1);
  });

  it('scales down by naming the drained pods in workersToDelete, and the operator removes exactly those', async () => {
    await start();
    await provider.removeNodes(cpu, ['cpu-a']);

    expect(patches()[0]?.body).toEqual([
      { op: 'test', path: '/spec/workerGroupSpecs/1/groupName', value: 'cpu' },
      { op: 'test', path: '/spec/workerGroupSpecs/1/replicas', value: 2 },
      { op: 'replace', path: '/spec/workerGroupSpecs/1/replicas', value: 1 },
      { op: 'add', path: '/spec/workerGroupSpecs/1/scaleStrategy', value: { workersToDelete: ['cpu-a'] } },
    ]);
    api().reconcile();
    expect((await provider.listNodes(cpu)).map((n) => n.nodeId)).toEqual(['cpu-b']);

    // The next change forgets the deletion the operator has carried out.
    await provider.addNodes(cpu, 2);
    expect(cpuGroupSpec()).toMatchObject({ replicas: 3, scaleStrategy: { workersToDelete: [] } });
    expect(patches()[1]?.body).toContainEqual({
      op: 'replace',
      path: '/spec/workerGroupSpecs/1/scaleStrategy',
      value: { workersToDelete: [] },
    });
  });

  it('keeps deletions the operator has not carried out yet, so it never picks pods of its own', async () => {
    await start();
    await provider.removeNodes(cpu, ['cpu-a']);
    await provider.removeNodes(cpu, ['cpu-b', 'cpu-a']);
    expect(cpuGroupSpec()).toMatchObject({
      replicas: 0,
      scaleStrategy: { workersToDelete: ['cpu-a', 'cpu-b'] },
    });
    api().reconcile();
    expect(await provider.listNodes(cpu)).toEqual([]);
  });

  it('refuses to name a pod that is not in the group, and changes nothing', async () => {
    await start();
    await expect(provider.removeNodes(cpu, ['gpu-a', 'cpu-a'])).rejects.toThrow(
      `kuberay: gpu-a is not a pod of worker group "cpu" in RayCluster ${NAMESPACE}/${CLUSTER}; nothing was changed`,
    );
    expect(patches()).toEqual([]);
  });

  it('surfaces a change the server rejects as a clear error naming the field, and the RayCluster stays as it was', async () => {
    await start();
    const before = api().rayCluster();
    await expect(provider.addNodes(cpu, 5)).rejects.toThrow(
      `kuberay: could not patch worker group "cpu" to replicas 7, workersToDelete [] in RayCluster ${NAMESPACE}/${CLUSTER}: ` +
        `HTTP 422 Invalid: RayCluster.ray.io "${CLUSTER}" is invalid: ` +
        'spec.workerGroupSpecs[1].replicas: Invalid value: 7: must be within minReplicas 0 and maxReplicas 3',
    );
    expect(patches().map((p) => p.status)).toEqual([422]);
    expect(api().rayCluster()).toEqual(before);
  });

  it('surfaces an impossible exact change too', async () => {
    await start();
    await expect(provider.applyChange(cpu, { replicas: -1, workersToDelete: [''] })).rejects.toThrow(
      /HTTP 422 Invalid: .*spec\.workerGroupSpecs\[1\]\.replicas: Invalid value: -1: must be an integer from 0 to 2147483647, spec\.workerGroupSpecs\[1\]\.scaleStrategy\.workersToDelete: Invalid value: \[""\]: must be an array of pod names/,
    );
  });

  it('says which worker groups exist when the group is not one of them', async () => {
    await start();
    const renamed = new KubeRayNodeProvider({
      kubeConfig,
      namespace: NAMESPACE,
      clusterName: CLUSTER,
      workerGroupNames: { cpu: 'cpu-workers' },
    });
    await expect(renamed.addNodes(cpu, 1)).rejects.toThrow(
      `kuberay: RayCluster ${NAMESPACE}/${CLUSTER} has no worker group "cpu-workers" (has: gpu, cpu)`,
    );
  });

  it('refuses to scale a RayCluster whose own autoscaler is on', async () => {
    await start(rayCluster({ enableInTreeAutoscaling: true }));
    await expect(provider.addNodes(cpu, 1)).rejects.toThrow(/enableInTreeAutoscaling: true/);
    expect(patches()).toEqual([]);
  });

  it('says so when the RayCluster does not exist', async () => {
    await start();
    const missing = new KubeRayNodeProvider({ kubeConfig, namespace: NAMESPACE, clusterName: 'nope' });
    await expect(missing.addNodes(cpu, 1)).rejects.toThrow(
      `kuberay: could not read in RayCluster ${NAMESPACE}/nope: HTTP 404 NotFound`,
    );
  });
});

describe('workerGroupPatch', () => {
  it('adds replicas and scaleStrategy when the group has neither yet', () => {
    expect(workerGroupPatch(0, { groupName: 'cpu' }, { replicas: 2, workersToDelete: [] })).toEqual([
      { op: 'test', path: '/spec/workerGroupSpecs/0/groupName', value: 'cpu' },
      { op: 'add', path: '/spec/workerGroupSpecs/0/replicas', value: 2 },
      { op: 'add', path: '/spec/workerGroupSpecs/0/scaleStrategy', value: { workersToDelete: [] } },
    ]);
  });
});

describe('the stand-in API server checks each PATCH', () => {
  beforeEach(async () => {
    await start();
  });

  async function send(body: string, contentType = 'application/json-patch+json') {
    const response = await fetch(api().url + PATCH_PATH, {
      method: 'PATCH',
      headers: { 'content-type': contentType, authorization: `Bearer ${TOKEN}` },
      body,
    });
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  it('accepts only JSON Patch', async () => {
    const merge = await send(JSON.stringify({ spec: {} }), 'application/merge-patch+json');
    expect(merge.status).toBe(415);
    expect(merge.body).toMatchObject({
      kind: 'Status',
      status: 'Failure',
      reason: 'UnsupportedMediaType',
      code: 415,
    });
  });

  it.each([
    ['an op it does not know', [{ op: 'merge', path: '/spec', value: {} }], 'unknown op "merge"'],
    [
      'a path that is no JSON pointer',
      [{ op: 'add', path: 'spec/x', value: 1 }],
      'must be "" or start with "/"',
    ],
    [
      'a value missing',
      [{ op: 'replace', path: '/spec/workerGroupSpecs/1/replicas' }],
      'op replace needs a value',
    ],
    [
      'a path that does not exist',
      [{ op: 'replace', path: '/spec/workerGroupSpecs/5/replicas', value: 1 }],
      'out of range',
    ],
    [
      'a failing test',
      [{ op: 'test', path: '/spec/workerGroupSpecs/1/replicas', value: 9 }],
      'test failed: the value is 2',
    ],
    [
      'replicas that are not an integer',
      [{ op: 'replace', path: '/spec/workerGroupSpecs/1/replicas', value: 1.5 }],
      'spec.workerGroupSpecs[1].replicas: Invalid value: 1.5',
    ],
    [
      'workersToDelete that is not a list of names',
      [{ op: 'add', path: '/spec/workerGroupSpecs/1/scaleStrategy', value: { workersToDelete: 'cpu-a' } }],
      'spec.workerGroupSpecs[1].scaleStrategy.workersToDelete: Invalid value: "cpu-a"',
    ],
  ])('refuses %s with 422 and a Status', async (_what, operations, message) => {
    const answer = await send(JSON.stringify(operations));
    expect(answer.status).toBe(422);
    expect(answer.body).toMatchObject({ kind: 'Status', reason: 'Invalid', code: 422 });
    expect(String(answer.body.message)).toContain(message);
  });

  it('refuses a request without the bearer token', async () => {
    const response = await fetch(api().url + PATCH_PATH);
    expect(response.status).toBe(401);
  });
});
