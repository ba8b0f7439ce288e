/**
 * The `kuberay` node provider: resizes a worker group of a RayCluster custom
 * resource, the way Ray's own autoscaler does on KubeRay. A scale-up raises
 * `spec.workerGroupSpecs[i].replicas`; a scale-down lowers it and names the
 * pods to delete in `spec.workerGroupSpecs[i].scaleStrategy.workersToDelete`,
 * so the KubeRay operator removes exactly those (already drained) pods and
 * not pods of its own choosing. Both are one JSON Patch.
 *
 * Thin on purpose: how many nodes and which ones are the policy's decision.
 * What the provider adds is what the API server and the operator do not do:
 *
 * - Bounds. The RayCluster CRD does not check replicas against
 *   min/maxReplicas (the API server accepts 7 of at most 3), and the operator
 *   silently clamps; so a change outside the group's bounds is refused here,
 *   with the bounds in the message, and nothing is sent.
 * - Pending deletions. The operator deletes the pods named in workersToDelete
 *   but never clears the list; the provider keeps the names whose pods still
 *   exist (dropping them would let the operator pick pods itself) and forgets
 *   the ones that are gone.
 * - Concurrency. The patch carries the resourceVersion it was computed from,
 *   so the API server refuses it (409 Conflict) if anyone changed the
 *   RayCluster since; the provider then reads again and recomputes the same
 *   change on top of the other writer's, a few times, so neither is lost.
 */
import {
  CoreV1Api,
  CustomObjectsApi,
  PatchStrategy,
  setHeaderOptions,
  type KubeConfig,
  type V1Pod,
} from '@kubernetes/client-node';
import { STATUS_CODES } from 'node:http';
import { z } from 'zod';
import type { NodeGroup } from '../../../../core/schemas/node-groups';
import type { NodeProvider, ProviderNode } from '../provider';

const RAY_GROUP = 'ray.io';
const RAY_VERSION = 'v1';
const RAY_CLUSTERS = 'rayclusters';
/** The CRD's default maxReplicas (int32's largest). */
const INT32_MAX = 2_147_483_647;
const DEFAULT_CONFLICT_ATTEMPTS = 5;

export interface KubeRayProviderOptions {
  kubeConfig: KubeConfig;
  namespace: string;
  /** The RayCluster's metadata.name. */
  clusterName: string;
  /** Pantheon node group name → KubeRay worker group name, where they differ. */
  workerGroupNames?: Record<string, string>;
  /**
   * Where the groups' pods are listed; the kubeConfig's API server unless given. (The
   * project's test API server serves custom resources only, so its tests list pods elsewhere.)
   */
  podsKubeConfig?: KubeConfig;
  /** How often a change refused for a concurrent write is read and computed again (default 5). */
  conflictAttempts?: number;
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
  metadata: z.looseObject({ resourceVersion: z.string().min(1) }),
  spec: z.looseObject({
    enableInTreeAutoscaling: z.boolean().optional(),
    workerGroupSpecs: z.array(workerGroupSpecSchema).default([]),
  }),
});

export type WorkerGroupSpec = z.infer<typeof workerGroupSpecSchema>;

/** A worker group as read: its position in spec.workerGroupSpecs and the RayCluster's resourceVersion. */
export interface WorkerGroupRead {
  index: number;
  spec: WorkerGroupSpec;
  resourceVersion: string;
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
 * The JSON Patch that turns the worker group as read into `change`. Setting
 * metadata.resourceVersion to the one read makes it conditional: the API server
 * answers 409 Conflict if the RayCluster changed in between.
 */
export function workerGroupPatch(read: WorkerGroupRead, change: WorkerGroupChange): JsonPatchOperation[] {
  const at = `/spec/workerGroupSpecs/${read.index}`;
  return [
    { op: 'replace', path: '/metadata/resourceVersion', value: read.resourceVersion },
    {
      op: read.spec.replicas === undefined ? 'add' : 'replace',
      path: `${at}/replicas`,
      value: change.replicas,
    },
    {
      op: read.spec.scaleStrategy === undefined ? 'add' : 'replace',
      path: `${at}/scaleStrategy`,
      value: { workersToDelete: change.workersToDelete },
    },
  ];
}

/** An API server's refusal, with its HTTP code and the Status it sent. */
export class KubeApiError extends Error {
  override name = 'KubeApiError';
  constructor(
    message: string,
    readonly code: number,
    options: { cause: unknown },
  ) {
    super(message, options);
  }
}

export class KubeRayNodeProvider implements NodeProvider {
  readonly name = 'kuberay' as const;
  private readonly customObjects: CustomObjectsApi;
  private readonly core: CoreV1Api;

  constructor(private readonly options: KubeRayProviderOptions) {
    this.customObjects = options.kubeConfig.makeApiClient(CustomObjectsApi);
    this.core = (options.podsKubeConfig ?? options.kubeConfig).makeApiClient(CoreV1Api);
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
    await this.change(group, `add ${count}`, async (read) => ({
      replicas: (read.spec.replicas ?? 0) + count,
      workersToDelete: await this.deletionsNotDoneYet(group, read.spec),
    }));
  }

  async removeNodes(group: NodeGroup, nodeIds: readonly string[]): Promise<void> {
    if (nodeIds.length === 0) return;
    await this.change(group, `remove ${nodeIds.join(', ')}`, async (read) => {
      const pods = new Set((await this.listNodes(group)).map((n) => n.nodeId));
      const strangers = nodeIds.filter((id) => !pods.has(id));
      if (strangers.length > 0) {
        throw new Error(
          `kuberay: ${strangers.join(', ')} ${strangers.length === 1 ? 'is not a pod' : 'are not pods'} of worker group "${this.workerGroupName(group)}" in RayCluster ${this.where()}; nothing was changed`,
        );
      }
      const pending = (read.spec.scaleStrategy?.workersToDelete ?? []).filter((pod) => pods.has(pod));
      const newlyNamed = [...new Set(nodeIds)].filter((id) => !pending.includes(id));
      return {
        replicas: (read.spec.replicas ?? 0) - newlyNamed.length,
        workersToDelete: [...pending, ...newlyNamed],
      };
    });
  }

  /** Sets the group's replicas and workersToDelete exactly as given (within its bounds), in one conditional JSON Patch. */
  async applyChange(group: NodeGroup, change: WorkerGroupChange): Promise<void> {
    await this.change(group, `set replicas ${change.replicas}`, () => Promise.resolve(change));
  }

  /**
   * Reads the group, computes the change from what was read, checks it against the group's
   * bounds and patches on condition that nothing changed since the read; on a 409 it starts
   * over from a fresh read, so a concurrent writer's change and this one both stand.
   */
  private async change(
    group: NodeGroup,
    what: string,
    compute: (read: WorkerGroupRead) => Promise<WorkerGroupChange>,
  ): Promise<void> {
    const attempts = this.options.conflictAttempts ?? DEFAULT_CONFLICT_ATTEMPTS;
    for (let attempt = 1; ; attempt++) {
      const read = await this.readWorkerGroup(group);
      const change = await compute(read);
      this.checkBounds(read, change, what);
      try {
        await this.patch(read, change);
        return;
      } catch (error) {
        if (!(error instanceof KubeApiError && error.code === 409)) throw error;
        if (attempt >= attempts) {
          throw new Error(
            `kuberay: RayCluster ${this.where()} changed under every one of ${attempts} attempts to ${what} in worker group "${read.spec.groupName}"; nothing was changed (last answer: ${error.message})`,
            { cause: error },
          );
        }
      }
    }
  }

  /** KubeRay would clamp a count outside the group's bounds without a word; refuse it instead. */
  private checkBounds(read: WorkerGroupRead, change: WorkerGroupChange, what: string): void {
    const min = read.spec.minReplicas ?? 0;
    const max = read.spec.maxReplicas ?? INT32_MAX;
    const current = read.spec.replicas ?? 0;
    const growsPastMax = change.replicas > max && change.replicas > current;
    const shrinksPastMin = change.replicas < min && change.replicas < current;
    if (growsPastMax || shrinksPastMin || change.replicas < 0) {
      throw new Error(
        `kuberay: cannot ${what} in worker group "${read.spec.groupName}" of RayCluster ${this.where()}: ` +
          `replicas would be ${change.replicas}, outside minReplicas ${min} and maxReplicas ${max} ` +
          `(replicas now ${current}); nothing was changed`,
      );
    }
  }

  private async patch(read: WorkerGroupRead, change: WorkerGroupChange): Promise<void> {
    const body = workerGroupPatch(read, change);
    await this.call(
      `patch worker group "${read.spec.groupName}" to replicas ${change.replicas}, workersToDelete [${change.workersToDelete.join(', ')}]`,
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
    return { index, spec, resourceVersion: parsed.data.metadata.resourceVersion };
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
      const refusal = describeApiError(error);
      const message = `kuberay: could not ${what} in RayCluster ${this.where()}: ${refusal.text}${hint(refusal.code)}`;
      if (refusal.code !== undefined) throw new KubeApiError(message, refusal.code, { cause: error });
      throw new Error(message, { cause: error });
    }
  }
}

/** What to check, for the refusals whose cause is in the deployment rather than the request. */
function hint(code: number | undefined): string {
  if (code === 401) {
    return ' (the API server did not accept the credentials: check the service-account token or the kubeconfig user)';
  }
  if (code === 403) {
    return ' (the worker needs get and patch on rayclusters.ray.io and list on pods in this namespace: deploy/pantheon/templates/rbac.yaml)';
  }
  return '';
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
 * The client's ApiException carries the HTTP code and, for most answers, the
 * raw response body: for the API server a `Status` object whose message says
 * what was wrong (e.g. which field is invalid). For a 401 the generated client
 * keeps no body, so the code's own reason phrase stands in.
 */
function describeApiError(error: unknown): { text: string; code?: number } {
  if (typeof error === 'object' && error !== null && 'code' in error && typeof error.code === 'number') {
    const body = 'body' in error ? error.body : undefined;
    let status: { reason?: unknown; message?: unknown } | undefined;
    try {
      status = typeof body === 'string' ? JSON.parse(body) : (body as typeof status);
    } catch {
      status = undefined;
    }
    const reason =
      typeof status?.reason === 'string' && status.reason !== '' ? status.reason : STATUS_CODES[error.code];
    const message =
      typeof status?.message === 'string' ? status.message : typeof body === 'string' ? body : '';
    return {
      text: `HTTP ${error.code}${reason ? ` ${reason.replace(/ /g, '')}` : ''}${message ? `: ${message}` : ''}`,
      code: error.code,
    };
  }
  return { text: error instanceof Error ? error.message : String(error) };
}
