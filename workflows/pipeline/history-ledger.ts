/**
 * The history budget of one pipeline run, kept inside its workflow: what is
 * recorded, what the steps in flight hold, and the wait for room
 * (core/history-budget.ts decides; this only keeps the numbers and waits).
 *
 * The run counts its own bytes rather than reading `workflowInfo().historySize`:
 * that figure is the size as of the last workflow task, and it was seen to lag
 * far behind (577 KB reported while about 4 MB of outputs were recorded), while
 * every byte a step adds passes through the workflow anyway. Workflow code:
 * deterministic.
 */
import { ApplicationFailure, condition } from '@temporalio/workflow';
import {
  admitStepToHistory,
  HISTORY_LIMITS,
  type HistoryLedgerState,
  type StepAdmission,
} from '../../core/history-budget';

/** Runs started before the budget replay without it: no step waits for room or is refused for size. */
export const HISTORY_BUDGET_PATCH = 'history-budget';

/** Room one step holds until it ends. */
export interface HistoryReservation {
  readonly bytes: number;
  settled: boolean;
}

export class HistoryLedger {
  private readonly state: HistoryLedgerState;

  /** `enabled` is false for runs started before the budget; `baseBytes` is what the run recorded before any step. */
  constructor(
    private readonly enabled: boolean,
    baseBytes: number,
  ) {
    this.state = { recorded: baseBytes, reserved: 0 };
  }

  get recordedBytes(): number {
    return this.state.recorded;
  }

  get reservedBytes(): number {
    return this.state.reserved;
  }

  /** Bytes certain to be in history that no step reserved (an update's input and outcome). */
  record(bytes: number): void {
    this.state.recorded += bytes;
  }

  /**
   * Holds `reservationBytes` for step `id` once they fit; waits while steps in flight may give room
   * back. Throws a non-retryable failure naming the step when the step can never fit.
   */
  async reserve(id: string, inputBytes: number, reservationBytes: number): Promise<HistoryReservation> {
    const reservation: HistoryReservation = { bytes: this.enabled ? reservationBytes : 0, settled: false };
    if (!this.enabled) return reservation;
    const step = { id, inputBytes, reservationBytes };
    let admission = admitStepToHistory(this.state, step, HISTORY_LIMITS);
    if (admission.decision === 'wait') {
      // Decided and taken inside the condition: every waiter is checked in the same activation, and
      // each must see the room the ones before it took.
      let taken = false;
      try {
        await condition(() => {
          admission = admitStepToHistory(this.state, step, HISTORY_LIMITS);
          taken = admission.decision === 'start';
          if (taken) this.state.reserved += reservationBytes;
          return admission.decision !== 'wait';
        });
      } catch (err) {
        // Cancelled in the activation that found it room: the room goes back.
        if (taken) this.state.reserved -= reservationBytes;
        throw err;
      }
    } else if (admission.decision === 'start') this.state.reserved += reservationBytes;
    const final = admission as StepAdmission;
    if (final.decision === 'refuse') throw ApplicationFailure.nonRetryable(final.message, final.reason);
    return reservation;
  }

  /** The step ended: its reservation gives way to what it really added. */
  settle(reservation: HistoryReservation, recordedBytes: number): void {
    if (!this.enabled || reservation.settled) return;
    reservation.settled = true;
    this.state.reserved -= reservation.bytes;
    this.state.recorded += recordedBytes;
  }
}
