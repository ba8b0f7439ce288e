/**
 * A node provider turns the policy's decision into nodes: `local` starts and
 * stops Ray worker nodes on this host, `kuberay` patches a RayCluster. It does
 * no deciding: how many nodes and which ones come from the policy (policy.ts),
 * and the provider does exactly that or fails loudly.
 */
import { z } from 'zod';
import type { NodeGroup } from '../../../core/schemas/node-groups';

/**
 * Where a provider's node is in its life:
 * - `starting`: asked for, not yet running (a process booting, a pod pending);
 * - `running`: up; it should be (or soon be) a Ray node of the group;
 * - `stopping`: being removed.
 */
export const providerNodeStateSchema = z.enum(['starting', 'running', 'stopping']);

export const providerNodeSchema = z
  .object({
    /**
     * The provider's name for the node, the one `removeNodes` takes and the
     * policy's ObservedNode.nodeId carries (local: the node's name; kuberay:
     * the pod name).
     */
    nodeId: z.string().min(1),
    state: providerNodeStateSchema,
    /** The node's IP address when known: how the observe step joins it to Ray's node list. */
    address: z.string().optional(),
  })
  .strict();

export type ProviderNodeState = z.infer<typeof providerNodeStateSchema>;
export type ProviderNode = z.infer<typeof providerNodeSchema>;

export interface NodeProvider {
  /** Which provider this is, as named in a node group's `provider` field. */
  readonly name: NodeGroup['provider'];

  /** The group's nodes as the provider knows them, including those starting and stopping. */
  listNodes(group: NodeGroup): Promise<ProviderNode[]>;

  /**
   * Asks for `count` more nodes of the group and returns once the request is
   * accepted, not once the nodes are up (they show as `starting` until then).
   */
  addNodes(group: NodeGroup, count: number): Promise<void>;

  /**
   * Removes these nodes of the group, and no others.
   *
   * Precondition, which the caller (the apply activity) establishes: each node
   * is idle and Ray has accepted a drain of it with the idle-termination
   * reason (Ray refuses that drain for a node that runs something). A provider
   * that can check this itself should, and must then refuse to remove a node
   * Ray would not drain: a node that runs a step is never removed.
   */
  removeNodes(group: NodeGroup, nodeIds: readonly string[]): Promise<void>;
}

/**
 * A provider's refusal to remove some of the nodes it was given (it removed the
 * others): what the apply activity reports instead of a bare failure.
 */
export class NodeRemovalRefusedError extends Error {
  override name = 'NodeRemovalRefusedError';
  constructor(
    readonly refused: ReadonlyArray<{ nodeId: string; reason: string }>,
    readonly removed: readonly string[],
  ) {
    super(
      `refused to remove ${refused.map((r) => `${r.nodeId} (${r.reason})`).join(', ')}` +
        (removed.length > 0 ? `; removed ${removed.join(', ')}` : ''),
    );
  }
}
