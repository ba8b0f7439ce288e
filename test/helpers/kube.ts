/**
 * What the `kube` tests share: the running test API server (started by
 * test/helpers/kube-global-setup.ts), kubeconfigs for its users, the
 * in-cluster configuration a pod would have, and RayClusters to work on.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CustomObjectsApi, KubeConfig } from '@kubernetes/client-node';
import {
  kubeStateDir,
  runningKubeTestServer,
  type KubeTestServer,
  type KubeUser,
} from '../../stack/kube-test-server';

export async function kubeTestServer(): Promise<KubeTestServer> {
  const server = await runningKubeTestServer(process.env.PANTHEON_KUBE_TEST_DIR ?? kubeStateDir());
  if (!server) {
    throw new Error(
      "the Kubernetes test API server is not running: the kube project's global setup starts it (npx jest --selectProjects kube)",
    );
  }
  return server;
}

/** A developer's configuration: a kubeconfig file with a client certificate. */
export function kubeConfigOf(server: KubeTestServer, user: KubeUser): KubeConfig {
  const config = new KubeConfig();
  config.loadFromFile(server.kubeconfigFile(user));
  return config;
}

/**
 * A pod's configuration, loaded the way a pod loads it: the API server from
 * KUBERNETES_SERVICE_HOST/PORT, the token, CA and namespace from the service
 * account's files (here under a temporary root instead of /).
 */
export function inClusterKubeConfig(server: KubeTestServer, token: string, namespace: string): KubeConfig {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-pod-'));
  const accountDir = path.join(root, 'var/run/secrets/kubernetes.io/serviceaccount');
  fs.mkdirSync(accountDir, { recursive: true });
  fs.writeFileSync(path.join(accountDir, 'token'), token);
  fs.copyFileSync(server.caFile, path.join(accountDir, 'ca.crt'));
  fs.writeFileSync(path.join(accountDir, 'namespace'), namespace);
  const url = new URL(server.url);
  const saved = { host: process.env.KUBERNETES_SERVICE_HOST, port: process.env.KUBERNETES_SERVICE_PORT };
  process.env.KUBERNETES_SERVICE_HOST = url.hostname;
  process.env.KUBERNETES_SERVICE_PORT = url.port;
  try {
    const config = new KubeConfig();
    config.loadFromCluster(root);
    return config;
  } finally {
    for (const [name, value] of [
      ['KUBERNETES_SERVICE_HOST', saved.host],
      ['KUBERNETES_SERVICE_PORT', saved.port],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  }
}

export const RAY_CLUSTERS = { group: 'ray.io', version: 'v1', plural: 'rayclusters' } as const;

let created = 0;
/** A RayCluster name no other test uses. */
export function uniqueClusterName(prefix = 'pantheon'): string {
  created += 1;
  return `${prefix}-${process.pid}-${created}`;
}

export interface WorkerGroupFixture {
  groupName: string;
  replicas?: number;
  minReplicas?: number;
  maxReplicas?: number;
}

/** A RayCluster as a team would write it (valid for the CRD), with these worker groups. */
export function rayClusterManifest(
  name: string,
  namespace: string,
  groups: WorkerGroupFixture[],
  spec: Record<string, unknown> = {},
) {
  const container = (role: string) => ({ name: `ray-${role}`, image: 'rayproject/ray:2.60.0' });
  return {
    apiVersion: 'ray.io/v1',
    kind: 'RayCluster',
    metadata: { name, namespace },
    spec: {
      enableInTreeAutoscaling: false,
      ...spec,
      headGroupSpec: { rayStartParams: {}, template: { spec: { containers: [container('head')] } } },
      workerGroupSpecs: groups.map((g) => ({
        ...g,
        rayStartParams: {},
        template: { spec: { containers: [container('worker')] } },
      })),
    },
  };
}

/** Creates a RayCluster as admin; returns it as stored (defaults applied). */
export async function createRayCluster(admin: KubeConfig, manifest: ReturnType<typeof rayClusterManifest>) {
  const api = admin.makeApiClient(CustomObjectsApi);
  return (await api.createNamespacedCustomObject({
    ...RAY_CLUSTERS,
    namespace: manifest.metadata.namespace,
    body: manifest,
  })) as StoredRayCluster;
}

export interface StoredRayCluster {
  metadata: {
    name: string;
    namespace: string;
    resourceVersion: string;
    generation: number;
    labels?: Record<string, string>;
  };
  spec: {
    workerGroupSpecs: Array<{
      groupName: string;
      replicas?: number;
      minReplicas?: number;
      maxReplicas?: number;
      numOfHosts?: number;
      scaleStrategy?: { workersToDelete?: string[] };
    }>;
  } & Record<string, unknown>;
}

export async function readRayCluster(admin: KubeConfig, namespace: string, name: string) {
  const api = admin.makeApiClient(CustomObjectsApi);
  return (await api.getNamespacedCustomObject({ ...RAY_CLUSTERS, namespace, name })) as StoredRayCluster;
}
