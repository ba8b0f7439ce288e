/**
 * The `kuberay` node provider: resizes a worker group of a RayCluster custom
 * resource, the way Ray's own autoscaler does on KubeRay. A scale-up raises
 * `spec.workerGroupSpecs[i].replicas`; a scale-down lowers it and names the
 * pods to delete in `spec.workerGroupSpecs[i].scaleStrategy.workersToDelete`,
 * so the KubeRay operator removes exactly those (already drained) pods and
 * not pods of its own choosing. Both are one JSON Patch.
 *
 * Thin on purpose: how many nodes and which ones are the policy's decision.
 * What the provider adds is bookkeeping the operator relies on: it keeps
 * earlier deletions that the operator has not carried out yet (dropping them
 * would let it delete random pods), forgets the ones it has, and guards the
 * patch with JSON Patch `test` operations, so a RayCluster that changed since
 * it was read is refused rather than overwritten.
 */
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Pod,
} from '@kubernetes/client-node';
import { z } from 'zod';
import type { NodeGroup } from '../../../../core/schemas/node-groups';
import type { NodeProvider, ProviderNode } from '../provider';

const RAY_GROUP = 'ray.io';
const RAY_VERSION = 'v1';
const RAY_CLUSTERS = 'rayclusters';

export interface KubeRayProviderOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** The RayCluster's metadata.name. */
  clusterName: string;
  /** Pantheon node group name → KubeRay worker group name, where they differ. */
  workerGroupNames?: Record<string, string>;
}

/** The RayCluster fields the provider reads; everything else is left as it is. */
const workerGroupSpecSchema = z.looseObject({
  groupName: z.string(),
  replicas: z.number().int().optional(),
  minReplicas: z.number().int().optional(),
  maxReplicas: z.number().int().optional(),
  scaleStrategy: z.looseObject({ workersToDelete: z.array(z.string()).optional() }).optional(),
});
const rayClusterSchema = z.looseObject({
  spec: z.looseObject({
    enableInTreeAutoscaling: z.boolean().optional(),
    workerGroupSpecs: z.array(workerGroupSpecSchema).default([]),
  }),
});

export type WorkerGroupSpec = z.infer<typeof workerGroupSpecSchema>;

/** A worker group as read, with its position in spec.workerGroupSpecs. */
interface WorkerGroupRead {
  index: number;
  spec: WorkerGroupSpec;
}

/** What one worker group should become. */
export interface WorkerGroupChange {
  replicas: number;
  workersToDelete: string[];
}

/** One RFC 6902 operation. */
export type JsonPatchOperation =
  { op: 'test' | 'add' | 'replace'; path: string; value: unknown } | { op: 'remove'; path: string };

/**
 * The JSON Patch that turns worker group `index` (as read: `current`) into
 * `change`, refused by the server if the group moved or its replicas changed
 * since it was read.
 */
export function workerGroupPatch(
  index: number,
  current: WorkerGroupSpec,
  change: WorkerGroupChange,
): JsonPatchOperation[] {
  const at = `/spec/workerGroupSpecs/${index}`;
  const operations: JsonPatchOperation[] = [
    { op: 'test', path: `${at}/groupName`, value: current.groupName },
  ];
  if (current.replicas === undefined) {
    operations.push({ op: 'add', path: `${at}/replicas`, value: change.replicas });
  } else {
    operations.push(
      { op: 'test', path: `${at}/replicas`, value: current.replicas },
      { op: 'replace', path: `${at}/replicas`, value: change.replicas },
    );
  }
  operations.push({
    op: current.scaleStrategy === undefined ? 'add' : 'replace',
    path: `${at}/scaleStrategy`,
    value: { workersToDelete: change.workersToDelete },
  });
  return operations;
}

export class KubeRayNodeProvider implements NodeProvider {
  readonly name = 'kuberay' as const;
  private readonly customObjects: CustomObjectsApi;
  private readonly core: CoreV1Api;

  constructor(private readonly options: KubeRayProviderOptions) {
    this.customObjects = options.kubeConfig.makeApiClient(CustomObjectsApi);
    this.core = options.kubeConfig.makeApiClient(CoreV1Api);
  }

  /** The group's worker pods; a pod's name is its node id. */
  async listNodes(group: NodeGroup): Promise<ProviderNode[]> {
    const pods = await this.call(`list the pods of worker group "${this.workerGroupName(group)}"`, () =>
      this.core.listNamespacedPod({
        namespace: this.options.namespace,
        labelSelector: `ray.io/cluster=${this.options.clusterName},ray.io/group=${this.workerGroupName(group)}`,
      }),
    );
    return pods.items.flatMap((pod) => {
      const nodeId = pod.metadata?.name;
      if (!nodeId) return [];
      return [{ nodeId, state: podState(pod), ...(pod.status?.podIP ? { address: pod.status.podIP } : {}) }];
    });
  }

  async addNodes(group: NodeGroup, count: number): Promise<void> {
    if (count <= 0) return;
    const read = await this.readWorkerGroup(group);
    const pending = await this.deletionsNotDoneYet(group, read.spec);
    await this.patch(read, { replicas: (read.spec.replicas ?? 0) + count, workersToDelete: pending });
  }

  async removeNodes(group: NodeGroup, nodeIds: readonly string[]): Promise<void> {
    if (nodeIds.length === 0) return;
    const read = await this.readWorkerGroup(group);
    const pods = new Set((await this.listNodes(group)).map((n) => n.nodeId));
    const strangers = nodeIds.filter((id) => !pods.has(id));
    if (strangers.length > 0) {
      throw new Error(
        `kuberay: ${strangers.join(', ')} ${strangers.length === 1 ? 'is not a pod' : 'are not pods'} of worker group "${this.workerGroupName(group)}" in RayCluster ${this.where()}; nothing was changed`,
      );
    }
    const pending = (read.spec.scaleStrategy?.workersToDelete ?? []).filter((pod) => pods.has(pod));
    const newlyNamed = [...new Set(nodeIds)].filter((id) => !pending.includes(id));
    await this.patch(read, {
      replicas: (read.spec.replicas ?? 0) - newlyNamed.length,
      workersToDelete: [...pending, ...newlyNamed],
    });
  }

  /** Sets the group's replicas and workersToDelete exactly as given, in one guarded JSON Patch. */
  async applyChange(group: NodeGroup, change: WorkerGroupChange): Promise<void> {
    await this.patch(await this.readWorkerGroup(group), change);
  }

  /** Patches the group as it was read: the patch's tests refuse it if the group changed since. */
  private async patch({ index, spec }: WorkerGroupRead, change: WorkerGroupChange): Promise<void> {
    const body = workerGroupPatch(index, spec, change);
    await this.call(
      `patch worker group "${spec.groupName}" to replicas ${change.replicas}, workersToDelete [${change.workersToDelete.join(', ')}]`,
      () =>
        this.customObjects.patchNamespacedCustomObject(
          { ...this.clusterRef(), body },
          // The generated client would pick JSON Patch too, as the first type it lists; say so rather than rely on it.
          setHeaderOptions('Content-Type', PatchStrategy.JsonPatch),
        ),
    );
  }

  private async readWorkerGroup(group: NodeGroup): Promise<WorkerGroupRead> {
    const raw: unknown = await this.call('read', () =>
      this.customObjects.getNamespacedCustomObject(this.clusterRef()),
    );
    const parsed = rayClusterSchema.safeParse(raw);
    if (!parsed.success) {
      throw new Error(
        `kuberay: RayCluster ${this.where()} does not look like a RayCluster: ${parsed.error.message}`,
      );
    }
    if (parsed.data.spec.enableInTreeAutoscaling === true) {
      throw new Error(
        `kuberay: RayCluster ${this.where()} has spec.enableInTreeAutoscaling: true, so Ray's own autoscaler would fight Pantheon's; set it to false`,
      );
    }
    const name = this.workerGroupName(group);
    const groups = parsed.data.spec.workerGroupSpecs;
    const index = groups.findIndex((g) => g.groupName === name);
    const spec = groups[index];
    if (!spec) {
      const known = groups.map((g) => g.groupName).join(', ') || 'none';
      throw new Error(`kuberay: RayCluster ${this.where()} has no worker group "${name}" (has: ${known})`);
    }
    return { index, spec };
  }

  /** Pods named for deletion earlier that still exist: the operator has yet to delete them. */
  private async deletionsNotDoneYet(group: NodeGroup, spec: WorkerGroupSpec): Promise<string[]> {
    const named = spec.scaleStrategy?.workersToDelete ?? [];
    if (named.length === 0) return [];
    const pods = new Set((await this.listNodes(group)).map((n) => n.nodeId));
    return named.filter((pod) => pods.has(pod));
  }

  private workerGroupName(group: NodeGroup): string {
    return this.options.workerGroupNames?.[group.name] ?? group.name;
  }

  private clusterRef() {
    return {
      group: RAY_GROUP,
      version: RAY_VERSION,
      namespace: this.options.namespace,
      plural: RAY_CLUSTERS,
      name: this.options.clusterName,
    };
  }

  private where(): string {
    return `${this.options.namespace}/${this.options.clusterName}`;
  }

  /** Runs one API call; a refusal becomes an error that says what was tried and what the server said. */
  private async call<T>(what: string, request: () => Promise<T>): Promise<T> {
    try {
      return await request();
    } catch (error) {
      throw new Error(
        `kuberay: could not ${what} in RayCluster ${this.where()}: ${describeApiError(error)}`,
        {
          cause: error,
        },
      );
    }
  }
}

function podState(pod: V1Pod): ProviderNode['state'] {
  if (pod.metadata?.deletionTimestamp) return 'stopping';
  switch (pod.status?.phase) {
    case 'Running':
      return 'running';
    case 'Pending':
    case undefined:
      return 'starting';
    default:
      return 'stopping';
  }
}

/**
 * The client's ApiException carries the HTTP code and the raw response body,
 * which for the API server is a `Status` object whose message says what was
 * wrong (e.g. which field is invalid).
 */
function describeApiError(error: unknown): string {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'number') {
    const body = 'body' in error ? error.body : undefined;
    let status: { reason?: unknown; message?: unknown } | undefined;
    try {
      status = typeof body === 'string' ? JSON.parse(body) : (body as typeof status);
    } catch {
      status = undefined;
    }
    const reason = typeof status?.reason === 'string' ? ` ${status.reason}` : '';
    const message = typeof status?.message === 'string' ? status.message : String(body ?? '');
    return `HTTP ${error.code}${reason}: ${message}`;
  }
  return error instanceof Error ? error.message : String(error);
}
