/**
 * Admission to Ray: a custom Temporal slot supplier that lets a node-group
 * worker hold only as many step activities as the group's Ray nodes have CPUs.
 * Work beyond that stays in Temporal's task queue, where priority and fairness
 * order it and where the autoscaler sees it as backlog (DESIGN.md, principle 1).
 * A group with no nodes takes no work at all until nodes appear.
 */
import type { ActivitySlotInfo, CustomSlotSupplier, SlotPermit } from '@temporalio/worker';
import type { Logger } from 'pino';
import { NODE_GROUP_LABEL } from '../core/schemas/node-groups';
import type { RayNode } from '../stack/ray-cluster-state';

export function groupCpuCapacity(nodes: readonly RayNode[], group: string): number {
  return nodes
    .filter((n) => n.alive && n.labels[NODE_GROUP_LABEL] === group)
    .reduce((sum, n) => sum + Math.floor(n.resourcesTotal['CPU'] ?? 0), 0);
}

export class RayCapacitySlotSupplier implements CustomSlotSupplier<ActivitySlotInfo> {
  readonly type = 'custom';
  private used = 0;
  private capacity = 0;
  private waiters = new Set<() => void>();

  constructor(
    readonly group: string,
    private readonly logger: Logger,
  ) {}

  get slotsInUse(): number {
    return this.used;
  }

  /** Steps the group's Ray nodes can hold now (their CPUs), as last read. */
  get slotCapacity(): number {
    return this.capacity;
  }

  setCapacity(capacity: number): void {
    if (capacity !== this.capacity) this.logger.info({ group: this.group, capacity }, 'Ray capacity changed');
    this.capacity = capacity;
    this.wake();
  }

  async reserveSlot(_ctx: unknown, abortSignal: AbortSignal): Promise<SlotPermit> {
    while (this.used >= this.capacity) {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          this.waiters.delete(wake);
          const err = new Error('slot reservation aborted');
          err.name = 'AbortError';
          reject(err);
        };
        const wake = () => {
          abortSignal.removeEventListener('abort', onAbort);
          resolve();
        };
        if (abortSignal.aborted) return onAbort();
        abortSignal.addEventListener('abort', onAbort, { once: true });
        this.waiters.add(wake);
      });
    }
    this.used++;
    return {};
  }

  tryReserveSlot(): SlotPermit | null {
    if (this.used >= this.capacity) return null;
    this.used++;
    return {};
  }

  markSlotUsed(): void {}

  releaseSlot(): void {
    this.used = Math.max(0, this.used - 1);
    this.wake();
  }

  private wake(): void {
    const waiters = [...this.waiters];
    this.waiters.clear();
    for (const wake of waiters) wake();
  }
}
