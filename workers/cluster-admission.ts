/**
 * Admission to Ray, cluster-wide: this worker's side of the dispatcher's
 * ledger (ray-tasks/pantheon_runtime/admission.py).
 *
 * Before a node-group worker polls its Temporal task queue, its slot supplier
 * reserves a unit (one CPU) of the group from the one ledger every worker
 * process shares, so N workers together never poll in more than the group's
 * alive Ray nodes can run, and the backlog stays in Temporal's queue, where
 * priority and fairness order it and the autoscaler reads it (DESIGN.md,
 * principles 1 and 8). The step activity then exchanges its unit for the
 * step's exact request when it submits (task-step.ts).
 *
 * Each unit is given back exactly once, by one of: the poll that found
 * nothing (released unused), the submit that exchanged it, or the activity
 * that ended without submitting (a job-mode step, a refusal) — the activity
 * interceptor below. The worker keeps its own count of units per group and
 * renews its lease with it every quarter lease; a dispatcher that does not
 * know the lease (it restarted) rebuilds it from that count, and a killed
 * worker's units come back when its lease runs out.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Context } from '@temporalio/activity';
import type {
  ActivityInterceptorsFactory,
  ActivitySlotInfo,
  CustomSlotSupplier,
  SlotMarkUsedContext,
  SlotPermit,
  SlotReleaseContext,
} from '@temporalio/worker';
import type { Logger } from 'pino';
import type { DispatcherClient } from '../activities/ray/dispatcher-client';
import type { StepAdmission } from '../activities/ray/task-step';

/** How long one reservation call waits at the dispatcher before the supplier asks again. */
const RESERVE_WAIT_S = 10;
/** After a failed call (Ray unavailable), the pause before trying again. */
const RETRY_PAUSE_MS = 1_000;

interface UnitPermit extends SlotPermit {
  used: boolean;
}

export class ClusterAdmission implements StepAdmission {
  /** This worker process's lease at the dispatcher. */
  readonly holder = `${hostname()}/${process.pid}/${randomUUID().slice(0, 8)}`;
  private readonly units = new Map<string, number>();
  /** Activities holding a unit they have not exchanged or given back yet, with its group. */
  private readonly unexchanged = new WeakMap<Context, string>();
  private renewTimer: NodeJS.Timeout | undefined;
  private leaseS = 10;
  private closed = false;

  constructor(
    private readonly dispatcher: Pick<DispatcherClient, 'reserve' | 'giveBack' | 'renew' | 'releaseHolder'>,
    private readonly logger: Logger,
  ) {}

  /** Units this worker holds per group now (reserved, not yet exchanged or given back). */
  unitsHeld(): Record<string, number> {
    return Object.fromEntries(this.units);
  }

  /** Takes the lease and keeps it renewed until close(). */
  async start(): Promise<void> {
    await this.renew();
    const schedule = () => {
      this.renewTimer = setTimeout(
        () => void this.renew().finally(() => !this.closed && schedule()),
        (this.leaseS * 1000) / 4,
      );
    };
    schedule();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.renewTimer);
    await this.dispatcher
      .releaseHolder(this.holder)
      .catch((err: unknown) => this.logger.warn({ err }, 'could not release the admission lease'));
  }

  private async renew(): Promise<void> {
    try {
      const answer = await this.dispatcher.renew(this.holder, this.unitsHeld());
      this.leaseS = answer.leaseS;
      if (Object.keys(answer.corrected).length > 0)
        this.logger.info(
          { corrected: answer.corrected },
          'the dispatcher rebuilt this worker’s lease from its unit count',
        );
    } catch (err) {
      this.logger.warn({ err }, 'could not renew the admission lease');
    }
  }

  private add(group: string, delta: number): void {
    this.units.set(group, Math.max(0, (this.units.get(group) ?? 0) + delta));
  }

  /** Waits for a unit of `group`; resolves true once granted, false if `signal` aborted first. */
  async reserve(group: string, signal: AbortSignal): Promise<boolean> {
    while (!signal.aborted && !this.closed) {
      const call = this.dispatcher.reserve(group, this.holder, RESERVE_WAIT_S).then(
        (answer) => {
          if (answer.granted) this.add(group, 1);
          return answer.granted;
        },
        (err: unknown) => {
          this.logger.warn({ err, group }, 'could not reserve a unit of the group; trying again');
          return new Promise<boolean>((resolve) => setTimeout(() => resolve(false), RETRY_PAUSE_MS));
        },
      );
      const aborted = new Promise<'aborted'>((resolve) => {
        if (signal.aborted) resolve('aborted');
        signal.addEventListener('abort', () => resolve('aborted'), { once: true });
      });
      const granted = await Promise.race([call, aborted]);
      if (granted === 'aborted') {
        // The grant may still arrive: it goes straight back.
        void call.then((late) => late && this.giveBack(group));
        return false;
      }
      if (granted) return true;
    }
    return false;
  }

  /** One unit of `group` back to the ledger. */
  giveBack(group: string): void {
    this.add(group, -1);
    this.dispatcher
      .giveBack(group, this.holder)
      .catch((err: unknown) =>
        this.logger.warn({ err, group }, 'could not give a unit back; the next renewal will'),
      );
  }

  /** The slot supplier of one group's worker. */
  slotSupplier(group: string): CustomSlotSupplier<ActivitySlotInfo> {
    return {
      type: 'custom',
      reserveSlot: async (_ctx, abortSignal): Promise<SlotPermit> => {
        if (!(await this.reserve(group, abortSignal))) {
          const err = new Error('slot reservation aborted');
          err.name = 'AbortError';
          throw err;
        }
        return { used: false } satisfies UnitPermit;
      },
      // Eager dispatch asks synchronously; a unit takes a round trip to the dispatcher.
      tryReserveSlot: () => null,
      markSlotUsed: (ctx: SlotMarkUsedContext<ActivitySlotInfo>) => {
        (ctx.permit as UnitPermit).used = true;
      },
      releaseSlot: (ctx: SlotReleaseContext<ActivitySlotInfo>) => {
        // A used slot's unit belongs to its activity (exchanged, or given back by the interceptor).
        if (!(ctx.permit as UnitPermit).used) this.giveBack(group);
      },
    };
  }

  /** Gives back the unit of an activity of `group` that ends without having exchanged it. */
  interceptor(group: string): ActivityInterceptorsFactory {
    return (ctx) => ({
      inbound: {
        execute: async (input, next) => {
          this.unexchanged.set(ctx, group);
          try {
            return await next(input);
          } finally {
            if (this.unexchanged.has(ctx)) {
              this.unexchanged.delete(ctx);
              this.giveBack(group);
            }
          }
        },
      },
    });
  }

  unitOf(ctx: Context): { holder: string; group: string } | undefined {
    const group = this.unexchanged.get(ctx);
    return group === undefined ? undefined : { holder: this.holder, group };
  }

  exchanged(ctx: Context): void {
    const group = this.unexchanged.get(ctx);
    if (group === undefined) return;
    this.unexchanged.delete(ctx);
    this.add(group, -1);
  }
}
