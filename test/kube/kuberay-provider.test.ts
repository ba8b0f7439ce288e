/**
 * The `kuberay` provider against a real Kubernetes API server: the CRD-only
 * server of k8s.io/apiextensions-apiserver with KubeRay's RayCluster CRD
 * (stack/kube-test-server.ts). Reading and patching RayClusters, the CRD's
 * validation, authentication (client certificates, service-account tokens),
 * authorization and conflicts are all the real server's.
 *
 * Pods are not: that server serves none and no operator runs, so the pod list
 * the provider reads comes from test/helpers/kube-pods-stand-in.ts, which also
 * plays KubeRay's reconciliation (delete the pods named in workersToDelete,
 * then bring each group to its clamped replicas).
 */
import { CustomObjectsApi, KubeConfig, PatchStrategy, setHeaderOptions } from '@kubernetes/client-node';
import pino from 'pino';
import { createAutoscalerActivities } from '../../activities/scaling/activities';
import {
  KubeRayNodeProvider,
  workerGroupPatch,
  type KubeRayProviderOptions,
} from '../../activities/scaling/providers/kuberay/provider';
import { nodeGroupSchema, type NodeGroup } from '../../core/schemas/node-groups';
import type { RbacObject } from '../../stack/kube-access-reviewer';
import type { KubeTestServer } from '../../stack/kube-test-server';
import {
  createRayCluster,
  inClusterKubeConfig,
  kubeConfigOf,
  kubeTestServer,
  RAY_CLUSTERS,
  rayClusterManifest,
  readRayCluster,
  uniqueClusterName,
} from '../helpers/kube';
import { startPodsStandIn, type PodsStandIn, type StandInPod } from '../helpers/kube-pods-stand-in';

const NAMESPACE = 'ml';

const cpu: NodeGroup = nodeGroupSchema.parse({
  name: 'cpu',
  provider: 'kuberay',
  node: { cpus: 2, memoryMb: 4096 },
  minNodes: 0,
  maxNodes: 3,
  costPerNodeHour: 0.1,
});

const GROUPS = [
  { groupName: 'gpu', replicas: 0, minReplicas: 0, maxReplicas: 2 },
  { groupName: 'cpu', replicas: 2, minReplicas: 0, maxReplicas: 3 },
];

const runningPods = (): StandInPod[] => [
  { name: 'cpu-a', group: 'cpu', phase: 'Running', ip: '10.0.0.1' },
  { name: 'cpu-b', group: 'cpu', phase: 'Running', ip: '10.0.0.2' },
];

let server: KubeTestServer;
let admin: KubeConfig;
let pods: PodsStandIn | undefined;
let clusterName: string;

beforeAll(async () => {
  server = await kubeTestServer();
  admin = kubeConfigOf(server, 'admin');
});

afterEach(async () => {
  await pods?.close();
  pods = undefined;
});

/** A fresh RayCluster on the real server, its pods in the stand-in, and a provider (admin unless told). */
async function start(
  options: {
    groups?: typeof GROUPS;
    spec?: Record<string, unknown>;
    pods?: StandInPod[];
    provider?: Partial<KubeRayProviderOptions>;
  } = {},
) {
  clusterName = uniqueClusterName();
  await createRayCluster(
    admin,
    rayClusterManifest(clusterName, NAMESPACE, options.groups ?? GROUPS, options.spec),
  );
  pods = await startPodsStandIn({ namespace: NAMESPACE, clusterName, pods: options.pods ?? runningPods() });
  return new KubeRayNodeProvider({
    kubeConfig: admin,
    namespace: NAMESPACE,
    clusterName,
    podsKubeConfig: pods.kubeConfig,
    ...options.provider,
  });
}

const stored = () => readRayCluster(admin, NAMESPACE, clusterName);
const cpuSpec = async () => (await stored()).spec.workerGroupSpecs[1];
function standIn(): PodsStandIn {
  if (!pods) throw new Error('no pod stand-in is running');
  return pods;
}
async function reconcile() {
  standIn().reconcile(await stored());
}

/** Another writer's JSON Patch, as admin. */
async function otherWriter(operations: unknown[]) {
  await admin
    .makeApiClient(CustomObjectsApi)
    .patchNamespacedCustomObject(
      { ...RAY_CLUSTERS, namespace: NAMESPACE, name: clusterName, body: operations },
      setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
    );
}

/**
 * The admin's configuration, with a hook that runs before each of the
 * provider's PATCH requests is sent: the provider has read the RayCluster and
 * computed its change, so a write here lands exactly between its read and write.
 */
class BeforePatch extends KubeConfig {
  patches = 0;
  constructor(private readonly before: (patch: number) => Promise<void>) {
    super();
    this.loadFromFile(server.kubeconfigFile('admin'));
  }
  override async applySecurityAuthentication(
    context: Parameters<KubeConfig['applySecurityAuthentication']>[0],
  ): Promise<void> {
    if (context.getHttpMethod() === 'PATCH') {
      this.patches += 1;
      await this.before(this.patches);
    }
    return super.applySecurityAuthentication(context);
  }
}

describe('kuberay provider against the real API server', () => {
  it('lists the worker pods of the group as nodes', async () => {
    const provider = await start({
      pods: [
        ...runningPods(),
        { name: 'cpu-new', group: 'cpu', phase: 'Pending' },
        { name: 'cpu-gone', group: 'cpu', phase: 'Running', terminating: true },
        { name: 'gpu-a', group: 'gpu', phase: 'Running' },
      ],
    });
    expect(await provider.listNodes(cpu)).toEqual([
      { nodeId: 'cpu-a', state: 'running', address: '10.0.0.1' },
      { nodeId: 'cpu-b', state: 'running', address: '10.0.0.2' },
      { nodeId: 'cpu-new', state: 'starting' },
      { nodeId: 'cpu-gone', state: 'stopping' },
    ]);
  });

  it('scales up with one conditional JSON Patch on the replicas of the right worker group', async () => {
    const provider = await start();
    const before = await stored();
    await provider.addNodes(cpu, 1);

    const after = await stored();
    expect(after.spec.workerGroupSpecs[1]).toMatchObject({
      replicas: 3,
      scaleStrategy: { workersToDelete: [] },
    });
    expect(after.spec.workerGroupSpecs[0]).toEqual(before.spec.workerGroupSpecs[0]);
    expect(Number(after.metadata.resourceVersion)).toBeGreaterThan(Number(before.metadata.resourceVersion));
    expect(after.metadata.generation).toBe(before.metadata.generation + 1);

    await reconcile();
    const nodes = await provider.listNodes(cpu);
    expect(nodes).toHaveLength(3);
    expect(nodes.filter((n) => n.state === 'starting')).toHaveLength(1);
  });

  it('scales down by naming the drained pods in workersToDelete, and forgets them once the pods are gone', async () => {
    const provider = await start();
    await provider.removeNodes(cpu, ['cpu-a']);
    expect(await cpuSpec()).toMatchObject({ replicas: 1, scaleStrategy: { workersToDelete: ['cpu-a'] } });

    // KubeRay deletes the named pod but leaves the name in the spec: clearing it is the autoscaler's job.
    await reconcile();
    expect((await provider.listNodes(cpu)).map((n) => n.nodeId)).toEqual(['cpu-b']);
    expect(await cpuSpec()).toMatchObject({ scaleStrategy: { workersToDelete: ['cpu-a'] } });

    await provider.addNodes(cpu, 2);
    expect(await cpuSpec()).toMatchObject({ replicas: 3, scaleStrategy: { workersToDelete: [] } });
  });

  it('keeps deletions the operator has not carried out yet, so it never picks pods of its own', async () => {
    const provider = await start();
    await provider.removeNodes(cpu, ['cpu-a']);
    await provider.removeNodes(cpu, ['cpu-b', 'cpu-a']);
    expect(await cpuSpec()).toMatchObject({
      replicas: 0,
      scaleStrategy: { workersToDelete: ['cpu-a', 'cpu-b'] },
    });
    await reconcile();
    expect(await provider.listNodes(cpu)).toEqual([]);
  });

  it('refuses to name a pod that is not in the group, and changes nothing', async () => {
    const provider = await start();
    const before = await stored();
    await expect(provider.removeNodes(cpu, ['gpu-a', 'cpu-a'])).rejects.toThrow(
      `kuberay: gpu-a is not a pod of worker group "cpu" in RayCluster ${NAMESPACE}/${clusterName}; nothing was changed`,
    );
    expect((await stored()).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
  });

  describe('min/maxReplicas', () => {
    it('the API server itself accepts replicas above maxReplicas (the CRD does not check), so the provider must', async () => {
      await start();
      await otherWriter([{ op: 'replace', path: '/spec/workerGroupSpecs/1/replicas', value: 7 }]);
      expect(await cpuSpec()).toMatchObject({ replicas: 7, maxReplicas: 3 });
    });

    it('refuses a scale-up past maxReplicas, naming the bounds, and sends nothing', async () => {
      const provider = await start();
      const before = await stored();
      await expect(provider.addNodes(cpu, 5)).rejects.toThrow(
        `kuberay: cannot add 5 in worker group "cpu" of RayCluster ${NAMESPACE}/${clusterName}: ` +
          'replicas would be 7, outside minReplicas 0 and maxReplicas 3 (replicas now 2); nothing was changed',
      );
      expect((await stored()).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
    });

    it('refuses a scale-down past minReplicas', async () => {
      const provider = await start({
        groups: [GROUPS[0]!, { groupName: 'cpu', replicas: 2, minReplicas: 2, maxReplicas: 3 }],
      });
      await expect(provider.removeNodes(cpu, ['cpu-a'])).rejects.toThrow(
        /replicas would be 1, outside minReplicas 2 and maxReplicas 3 \(replicas now 2\); nothing was changed/,
      );
      expect(await cpuSpec()).toMatchObject({ replicas: 2 });
      expect((await cpuSpec())?.scaleStrategy).toBeUndefined();
    });

    it('still scales down a group that someone else left above maxReplicas', async () => {
      const provider = await start();
      await otherWriter([{ op: 'replace', path: '/spec/workerGroupSpecs/1/replicas', value: 5 }]);
      await provider.removeNodes(cpu, ['cpu-a']);
      expect(await cpuSpec()).toMatchObject({ replicas: 4, scaleStrategy: { workersToDelete: ['cpu-a'] } });
    });
  });

  describe('a concurrent writer', () => {
    it('bumps the resourceVersion between read and patch: the patch gets a 409, is recomputed, and both changes stand', async () => {
      const kubeConfig = new BeforePatch(async (patch) => {
        if (patch === 1) await otherWriter([{ op: 'add', path: '/metadata/labels', value: { team: 'ml' } }]);
      });
      const provider = await start({ provider: { kubeConfig } });
      await provider.addNodes(cpu, 1);
      const after = await stored();
      expect(after.metadata.labels).toEqual({ team: 'ml' });
      expect(after.spec.workerGroupSpecs[1]).toMatchObject({ replicas: 3 });
      expect(kubeConfig.patches).toBe(2);
    });

    it('edits the replicas between read and patch: the scale-up lands on top of the edit, not over it', async () => {
      const kubeConfig = new BeforePatch(async (patch) => {
        if (patch === 1)
          await otherWriter([{ op: 'replace', path: '/spec/workerGroupSpecs/1/replicas', value: 1 }]);
      });
      const provider = await start({ provider: { kubeConfig } });
      await provider.addNodes(cpu, 1);
      expect(await cpuSpec()).toMatchObject({ replicas: 2 });
    });

    it('that never stops: gives up after the configured attempts with a clear error, and leaves its writes alone', async () => {
      let value = 0;
      const kubeConfig = new BeforePatch(async () => {
        value += 1;
        await otherWriter([{ op: 'add', path: '/metadata/labels', value: { writer: String(value) } }]);
      });
      const provider = await start({ provider: { kubeConfig, conflictAttempts: 3 } });
      await expect(provider.addNodes(cpu, 1)).rejects.toThrow(
        new RegExp(
          `kuberay: RayCluster ${NAMESPACE}/${clusterName} changed under every one of 3 attempts to add 1 in worker group "cpu"; nothing was changed \\(last answer: .*HTTP 409 Conflict: `,
        ),
      );
      expect(await cpuSpec()).toMatchObject({ replicas: 2 });
      expect((await stored()).metadata.labels).toEqual({ writer: '3' });
    });
  });

  describe('refusals, as the autoscaler records them', () => {
    /** What applyScaling reports for a decision to add one node to cpu, through this provider. */
    async function appliedError(provider: KubeRayNodeProvider): Promise<string | null> {
      const activities = createAutoscalerActivities({
        workflowService: {} as never,
        namespace: 'default',
        bridge: {} as never,
        nodeGroups: [cpu],
        providerFor: () => provider,
        logger: pino({ level: 'silent' }),
      });
      const result = await activities.applyScaling({
        decisions: [
          { group: 'cpu', current: 2, desired: 3, add: 1, remove: [], infeasibleSteps: 0, reasons: ['test'] },
        ],
      });
      return result.groups[0]?.error ?? null;
    }

    it('401: credentials the server does not accept', async () => {
      const provider = await start();
      const stranger = new KubeRayNodeProvider({
        kubeConfig: inClusterKubeConfig(server, 'not-a-token-the-server-knows', NAMESPACE),
        namespace: NAMESPACE,
        clusterName,
        podsKubeConfig: standIn().kubeConfig,
      });
      expect(provider).toBeDefined();
      expect(await appliedError(stranger)).toBe(
        `kuberay: could not read in RayCluster ${NAMESPACE}/${clusterName}: HTTP 401 Unauthorized` +
          ' (the API server did not accept the credentials: check the service-account token or the kubeconfig user)',
      );
    });

    it('403: an authenticated user whom no RBAC rule allows', async () => {
      await start();
      server.setRbac([]);
      const developer = new KubeRayNodeProvider({
        kubeConfig: kubeConfigOf(server, 'developer'),
        namespace: NAMESPACE,
        clusterName,
        podsKubeConfig: standIn().kubeConfig,
      });
      expect(await appliedError(developer)).toBe(
        `kuberay: could not read in RayCluster ${NAMESPACE}/${clusterName}: HTTP 403 Forbidden: ` +
          `rayclusters.ray.io "${clusterName}" is forbidden: User "developer" cannot get resource "rayclusters" in API group "ray.io" in the namespace "${NAMESPACE}": no RBAC rule grants it` +
          ' (the worker needs get and patch on rayclusters.ray.io and list on pods in this namespace: deploy/pantheon/templates/rbac.yaml)',
      );
    });

    it('404: no such RayCluster', async () => {
      await start();
      const missing = new KubeRayNodeProvider({
        kubeConfig: admin,
        namespace: NAMESPACE,
        clusterName: 'nope',
        podsKubeConfig: standIn().kubeConfig,
      });
      expect(await appliedError(missing)).toBe(
        `kuberay: could not read in RayCluster ${NAMESPACE}/nope: HTTP 404 NotFound: rayclusters.ray.io "nope" not found`,
      );
    });

    it("422: a change the CRD rejects, with the CRD's own message naming the field; the RayCluster stays as it was", async () => {
      const provider = await start();
      const before = await stored();
      await expect(provider.applyChange(cpu, { replicas: 2.5, workersToDelete: [] })).rejects.toThrow(
        `kuberay: could not patch worker group "cpu" to replicas 2.5, workersToDelete [] in RayCluster ${NAMESPACE}/${clusterName}: HTTP 422 Invalid: `,
      );
      await expect(provider.applyChange(cpu, { replicas: 2.5, workersToDelete: [] })).rejects.toThrow(
        /spec\.workerGroupSpecs\[1\]\.replicas: Invalid value: "number": spec\.workerGroupSpecs\[1\]\.replicas in body must be of type integer: "number"/,
      );
      expect(await stored()).toEqual(before);
    });
  });

  describe('authentication', () => {
    const rbacFor = (subject: { kind: string; name: string; namespace?: string }): RbacObject[] => [
      {
        kind: 'Role' as const,
        metadata: { name: 'kuberay-provider', namespace: NAMESPACE },
        rules: [
          { apiGroups: ['ray.io'], resources: ['rayclusters'], verbs: ['get', 'patch'] },
          { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
        ],
      },
      {
        kind: 'RoleBinding' as const,
        metadata: { name: 'kuberay-provider', namespace: NAMESPACE },
        subjects: [subject],
        roleRef: { kind: 'Role' as const, name: 'kuberay-provider' },
      },
    ];

    it('as a pod: the service-account token and CA from files', async () => {
      await start();
      server.setRbac(rbacFor({ kind: 'ServiceAccount', name: 'pantheon-worker', namespace: NAMESPACE }));
      const token = server.mintServiceAccountToken(NAMESPACE, 'pantheon-worker');
      const provider = new KubeRayNodeProvider({
        kubeConfig: inClusterKubeConfig(server, token, NAMESPACE),
        namespace: NAMESPACE,
        clusterName,
        podsKubeConfig: standIn().kubeConfig,
      });
      await provider.addNodes(cpu, 1);
      expect(await cpuSpec()).toMatchObject({ replicas: 3 });
    });

    it('as a developer: a kubeconfig with a client certificate', async () => {
      await start();
      server.setRbac(rbacFor({ kind: 'User', name: 'developer' }));
      const provider = new KubeRayNodeProvider({
        kubeConfig: kubeConfigOf(server, 'developer'),
        namespace: NAMESPACE,
        clusterName,
        podsKubeConfig: standIn().kubeConfig,
      });
      await provider.removeNodes(cpu, ['cpu-b']);
      expect(await cpuSpec()).toMatchObject({ replicas: 1, scaleStrategy: { workersToDelete: ['cpu-b'] } });
    });
  });

  it('says which worker groups exist when the group is not one of them', async () => {
    const provider = await start({ provider: { workerGroupNames: { cpu: 'cpu-workers' } } });
    await expect(provider.addNodes(cpu, 1)).rejects.toThrow(
      `kuberay: RayCluster ${NAMESPACE}/${clusterName} has no worker group "cpu-workers" (has: gpu, cpu)`,
    );
  });

  it('refuses to scale a RayCluster whose own autoscaler is on', async () => {
    const provider = await start({ spec: { enableInTreeAutoscaling: true } });
    const before = await stored();
    await expect(provider.addNodes(cpu, 1)).rejects.toThrow(/enableInTreeAutoscaling: true/);
    expect((await stored()).metadata.resourceVersion).toBe(before.metadata.resourceVersion);
  });
});

describe('workerGroupPatch', () => {
  it('conditions the change on the resourceVersion read, and adds what the group does not have yet', () => {
    expect(
      workerGroupPatch(
        { index: 0, spec: { groupName: 'cpu' }, resourceVersion: '42' },
        { replicas: 2, workersToDelete: [] },
      ),
    ).toEqual([
      { op: 'replace', path: '/metadata/resourceVersion', value: '42' },
      { op: 'add', path: '/spec/workerGroupSpecs/0/replicas', value: 2 },
      { op: 'add', path: '/spec/workerGroupSpecs/0/scaleStrategy', value: { workersToDelete: [] } },
    ]);
  });
});
