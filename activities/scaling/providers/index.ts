/**
 * The node providers a worker uses, by the name node groups give in their
 * `provider` field: `local` (Ray worker nodes on this host) and, when
 * configured, `kuberay` (a RayCluster's worker groups). Built once per worker.
 */
import type { Logger } from 'pino';
import type { StackConfig } from '../../../stack/config';
import type { NodeGroup } from '../../../core/schemas/node-groups';
import { LocalNodeProvider } from './local/provider';
import type { NodeProvider } from './provider';
import { readRayClusterState, type BridgeCaller } from '../ray-cluster';

export interface KubeRaySettings {
  /** The RayCluster's metadata.name. */
  clusterName: string;
  namespace: string;
}

export interface NodeProviders {
  providerFor(group: NodeGroup): NodeProvider;
  /**
   * Resolves once node starts run at full speed. The local node launcher is
   * started by the autoscaler's first look at a local group; this starts it
   * now, for a caller that must not measure its start-up.
   */
  warmedUp(): Promise<void>;
  /** Lets starts and stops under way finish. */
  close(): Promise<void>;
}

export async function createNodeProviders(options: {
  groups: readonly NodeGroup[];
  /** Where local nodes are recorded and how they reach Ray. */
  stack: StackConfig;
  bridge: BridgeCaller;
  kuberay: KubeRaySettings | null;
  logger: Logger;
}): Promise<NodeProviders> {
  const local = new LocalNodeProvider(
    options.stack,
    () => readRayClusterState(options.bridge),
    options.logger.child({ provider: 'local' }),
  );
  let kuberay: NodeProvider | null = null;
  if (options.kuberay && options.groups.some((g) => g.provider === 'kuberay')) {
    // Loaded only when a group needs it: the Kubernetes client is large.
    const [{ KubeConfig }, { KubeRayNodeProvider }] = await Promise.all([
      import('@kubernetes/client-node'),
      import('./kuberay/provider'),
    ]);
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromDefault(); // in-cluster service account, or KUBECONFIG / ~/.kube/config
    kuberay = new KubeRayNodeProvider({ kubeConfig, ...options.kuberay });
  }
  return {
    providerFor(group) {
      if (group.provider === 'local') return local;
      if (kuberay) return kuberay;
      throw new Error(
        `node group "${group.name}" uses the kuberay provider, which this worker has not configured: set PANTHEON_KUBERAY_CLUSTER (and PANTHEON_KUBERAY_NAMESPACE)`,
      );
    },
    warmedUp: () => local.warmedUp(),
    close: () => local.close(),
  };
}
