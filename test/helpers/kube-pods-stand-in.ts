/**
 * The one part of a Kubernetes cluster the kuberay provider's tests cannot get
 * from the real test API server (stack/kube-test-server.ts): Pods. That server
 * serves custom resources only, and nothing turns a RayCluster into pods. So
 * this local HTTP server serves the pod list endpoint (GET
 * /api/v1/namespaces/<ns>/pods with a label selector, bearer token required),
 * and `reconcile(rayCluster)` plays the KubeRay operator's part as v1.5 does:
 * it deletes the pods named in a group's `scaleStrategy.workersToDelete`, then
 * creates or trims pods to the group's replicas, clamped to min/maxReplicas.
 *
 * Everything about the RayCluster itself (reading, patching, validation,
 * authentication, conflicts) goes to the real server; only `listNodes` and the
 * provider's pod checks read from here.
 */
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { KubeConfig } from '@kubernetes/client-node';

export interface StandInPod {
  name: string;
  /** The KubeRay worker group (label `ray.io/group`). */
  group: string;
  phase: 'Pending' | 'Running';
  ip?: string;
  /** Set when deletion has begun (metadata.deletionTimestamp). */
  terminating?: boolean;
}

interface WorkerGroupSpec {
  groupName: string;
  replicas?: number;
  minReplicas?: number;
  maxReplicas?: number;
  scaleStrategy?: { workersToDelete?: string[] };
}

export interface PodsStandIn {
  url: string;
  /** A kubeconfig for this server, with the token it requires. */
  kubeConfig: KubeConfig;
  pods: StandInPod[];
  /** Pod lists served, for tests that assert the provider looked (or did not). */
  listRequests: number;
  /** What the KubeRay operator would do to the pods for this RayCluster spec, done at once. */
  reconcile(rayCluster: { spec?: { workerGroupSpecs?: WorkerGroupSpec[] } }): void;
  close(): Promise<void>;
}

export async function startPodsStandIn(options: {
  namespace: string;
  clusterName: string;
  pods?: StandInPod[];
}): Promise<PodsStandIn> {
  const token = `pods-${process.pid}-${Date.now()}`;
  const podsPath = `/api/v1/namespaces/${options.namespace}/pods`;
  let created = 0;
  const state: PodsStandIn = {
    url: '',
    kubeConfig: new KubeConfig(),
    pods: options.pods ?? [],
    listRequests: 0,
    reconcile(rayCluster) {
      for (const group of rayCluster.spec?.workerGroupSpecs ?? []) {
        const named = new Set(group.scaleStrategy?.workersToDelete ?? []);
        state.pods = state.pods.filter((p) => !(p.group === group.groupName && named.has(p.name)));
        // KubeRay clamps replicas to [minReplicas, maxReplicas] rather than refusing them.
        const wanted = Math.min(
          Math.max(group.replicas ?? 0, group.minReplicas ?? 0),
          group.maxReplicas ?? 2_147_483_647,
        );
        const mine = state.pods.filter((p) => p.group === group.groupName);
        for (let i = mine.length; i < wanted; i++) {
          created += 1;
          state.pods.push({
            name: `${options.clusterName}-${group.groupName}-worker-${created}`,
            group: group.groupName,
            phase: 'Pending',
          });
        }
        // Without named deletions KubeRay picks pods itself; here the newest go.
        const extra = new Set(mine.slice(wanted).map((p) => p.name));
        state.pods = state.pods.filter((p) => !extra.has(p.name));
      }
    },
    close: () => new Promise<void>((resolve, reject) => server.close((e) => (e ? reject(e) : resolve()))),
  };

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.headers.authorization !== `Bearer ${token}`) {
      return reply(401, { kind: 'Status', status: 'Failure', reason: 'Unauthorized', code: 401 });
    }
    if (req.method !== 'GET' || url.pathname !== podsPath) {
      return reply(404, { kind: 'Status', status: 'Failure', reason: 'NotFound', code: 404 });
    }
    state.listRequests += 1;
    reply(200, podList(state.pods, options, url.searchParams.get('labelSelector')));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  state.kubeConfig.loadFromOptions({
    // Plain HTTP on loopback; the client refuses http:// unless told not to verify TLS.
    clusters: [{ name: 'pods', server: state.url, skipTLSVerify: true }],
    users: [{ name: 'pods', token }],
    contexts: [{ name: 'pods', cluster: 'pods', user: 'pods', namespace: options.namespace }],
    currentContext: 'pods',
  });
  return state;
}

function podList(
  pods: readonly StandInPod[],
  options: { namespace: string; clusterName: string },
  selector: string | null,
) {
  const wanted = (selector ?? '')
    .split(',')
    .filter((term) => term !== '')
    .map((term) => term.split('=') as [string, string]);
  const items = pods
    .map((pod) => ({
      pod,
      labels: {
        'ray.io/cluster': options.clusterName,
        'ray.io/group': pod.group,
        'ray.io/node-type': 'worker',
      } as Record<string, string>,
    }))
    .filter(({ labels }) => wanted.every(([key, value]) => labels[key] === value))
    .map(({ pod, labels }) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name: pod.name,
        namespace: options.namespace,
        labels,
        ...(pod.terminating ? { deletionTimestamp: '2026-01-01T00:00:00Z' } : {}),
      },
      status: { phase: pod.phase, ...(pod.ip ? { podIP: pod.ip } : {}) },
    }));
  return { apiVersion: 'v1', kind: 'PodList', metadata: { resourceVersion: '1' }, items };
}
