/**
 * How much of Temporal's history a pipeline run may fill, and whether one
 * more step fits (DESIGN.md principle 6; docs/limits.md has the arithmetic).
 *
 * Temporal terminates a workflow whose history passes 50 MB, and refuses an
 * activity input over 2 MB with a workflow-task failure that repeats forever.
 * A step's bytes land in history: its resolved input when its activity is
 * scheduled, its output (or failure) when it ends. Before a step starts, the
 * run reserves what the step can at most add; the step starts only when the
 * reservation fits the budget next to what is already recorded and what the
 * steps in flight have reserved, waits while those may still release room,
 * and is refused (by name, non-retryably) when it can never fit. After the
 * step the reservation is replaced by what it really added.
 *
 * Pure: plain numbers in, a decision out. The workflow keeps the ledger
 * (workflows/pipeline/history-ledger.ts).
 */

export const HISTORY_LIMITS = {
  /**
   * What one run may fill: Temporal's 50 MB less room for what no step
   * accounts for (workflow tasks, updates' own events, markers, the search
   * attribute upserts) and for the pipeline's result.
   */
  budgetBytes: 40 * 1024 * 1024,
  /**
   * The largest output a step returns inline (the worker's `PANTHEON_MAX_RESULT_BYTES`
   * may lower it, never raise it): what the ledger reserves for a step's output.
   */
  maxStepOutputBytes: 256 * 1024,
  /**
   * The largest resolved input of one step activity: Temporal refuses a payload over
   * 2 MB, and a step's input grows with the outputs its `$step` references pull in.
   */
  maxStepInputBytes: 1024 * 1024,
  /** The events of one activity (scheduled, started, completed: ids, options, retry policy), beside its payloads. */
  activityOverheadBytes: 2 * 1024,
  /**
   * A task step's failure as recorded: the dispatcher cuts its message and its traceback to
   * 4,000 characters each (up to 3 bytes each in UTF-8), beside the stack and the attempt details.
   */
  maxFailureBytes: 32 * 1024,
  /**
   * The end of a Ray job's log a job step keeps (the worker's `PANTHEON_JOB_LOG_TAIL_BYTES` may
   * lower it): its output and its failure carry it, its last heartbeat too.
   */
  maxJobLogTailBytes: 64 * 1024,
  /**
   * What an agent's memory adds to its host activity's input: the recalled memories
   * (at most `AGENT_RECALL_TOP_K` texts of 8,000 characters with their provenance) and the
   * knowledge graph's context.
   */
  agentMemoryAllowanceBytes: 256 * 1024,
  /**
   * A run's own events beside its steps: the start (its input is counted apart), the
   * placement read, markers, search attribute upserts, the end (its result is counted apart).
   */
  runOverheadBytes: 64 * 1024,
} as const;

export type HistoryLimits = typeof HISTORY_LIMITS;

/** UTF-8 bytes of a value as JSON (what Temporal's JSON payload converter stores); 0 for `undefined`. */
export function jsonBytes(value: unknown): number {
  const json = JSON.stringify(value);
  if (json === undefined) return 0;
  let bytes = 0;
  for (let i = 0; i < json.length; i++) {
    const code = json.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    // A surrogate pair is one 4-byte character: 2 bytes for each half.
    else if (code >= 0xd800 && code <= 0xdfff) bytes += 2;
    else bytes += 3;
  }
  return bytes;
}

export type StepKind = 'task' | 'job' | 'agent';

/**
 * The most one step can add to history, from its resolved input: a task or job
 * step is one activity (its input, then its output or failure); an agent step
 * also opens and writes its memory (the recall's answer, and a retain whose input
 * is at most the output again) and hands its host the input plus that memory.
 */
export function stepReservationBytes(
  kind: StepKind,
  inputBytes: number,
  limits: HistoryLimits = HISTORY_LIMITS,
): number {
  const outcome = Math.max(limits.maxStepOutputBytes, failureBytes(kind, limits));
  if (kind !== 'agent') return inputBytes + outcome + limits.activityOverheadBytes;
  return (
    // the recall's query and answer, the host's input (the step's input and that memory), the retain
    2 * inputBytes + 2 * limits.agentMemoryAllowanceBytes + 2 * outcome + 3 * limits.activityOverheadBytes
  );
}

/** How a step's activity ended, as far as history is concerned. */
export type StepOutcome = { succeeded: true; output: unknown } | { succeeded: false };

/** The most a failure of a step of this kind takes in history: a job's carries its log tail twice. */
export function failureBytes(kind: StepKind, limits: HistoryLimits = HISTORY_LIMITS): number {
  return limits.maxFailureBytes + (kind === 'job' ? 2 * limits.maxJobLogTailBytes : 0);
}

/** The bytes an outcome takes in history: the output itself, or the most a failure may take. */
export function outcomeBytes(
  kind: StepKind,
  outcome: StepOutcome,
  limits: HistoryLimits = HISTORY_LIMITS,
): number {
  return outcome.succeeded ? jsonBytes(outcome.output) : failureBytes(kind, limits);
}

/** What a finished task or job step really added: its input, its output or failure, its events. */
export function taskStepRecordedBytes(
  kind: 'task' | 'job',
  inputBytes: number,
  outcome: StepOutcome,
  limits: HistoryLimits = HISTORY_LIMITS,
): number {
  return inputBytes + outcomeBytes(kind, outcome, limits) + limits.activityOverheadBytes;
}

/**
 * What a run has recorded before any step: its input, its own events, and room for
 * its end, whose result or failure details carry up to `resultBytes` (boundedResult).
 */
export function runBaseBytes(
  inputBytes: number,
  resultBytes: number,
  limits: HistoryLimits = HISTORY_LIMITS,
): number {
  return inputBytes + resultBytes + limits.runOverheadBytes;
}

/**
 * What one agent run really added: the recall (its query, at most the step's input, and
 * the memory it answered), the host activity (its input and the outcome), and the retain
 * (whose input is at most the outcome).
 */
export function agentStepRecordedBytes(
  parts: { inputBytes: number; memoryBytes: number; hostInputBytes: number; outcome: StepOutcome },
  limits: HistoryLimits = HISTORY_LIMITS,
): number {
  return (
    parts.inputBytes +
    parts.memoryBytes +
    parts.hostInputBytes +
    2 * outcomeBytes('agent', parts.outcome, limits) +
    3 * limits.activityOverheadBytes
  );
}

/** The ledger of one run, in bytes. */
export interface HistoryLedgerState {
  /** Already in history (or certain to be): the run's start, finished steps, updates. */
  recorded: number;
  /** Held by steps in flight: the most each may still add. */
  reserved: number;
}

export type StepAdmission =
  | { decision: 'start' }
  | { decision: 'wait' }
  | { decision: 'refuse'; reason: 'StepInputTooLarge' | 'HistoryBudgetExhausted'; message: string };

const mb = (bytes: number) => `${(bytes / (1024 * 1024)).toFixed(1)} MB`;

/**
 * Whether a step whose input takes `inputBytes` and whose reservation is
 * `reservationBytes` may start now. It waits while steps in flight hold room
 * they may give back; it is refused when even after them it could not fit
 * (`recorded` only grows) or when its input alone is more than one activity
 * may carry.
 */
export function admitStepToHistory(
  ledger: HistoryLedgerState,
  step: { id: string; inputBytes: number; reservationBytes: number },
  limits: HistoryLimits = HISTORY_LIMITS,
): StepAdmission {
  if (step.inputBytes > limits.maxStepInputBytes)
    return {
      decision: 'refuse',
      reason: 'StepInputTooLarge',
      message:
        `step "${step.id}": its resolved input takes ${step.inputBytes} bytes as JSON, more than the ` +
        `${limits.maxStepInputBytes} one step may be given (the outputs its $step references pull in count); ` +
        'pass large data by reference (a path or URL the task reads)',
    };
  if (ledger.recorded + step.reservationBytes > limits.budgetBytes)
    return {
      decision: 'refuse',
      reason: 'HistoryBudgetExhausted',
      message:
        `step "${step.id}": the pipeline's history already holds ${mb(ledger.recorded)} and this step may ` +
        `add ${mb(step.reservationBytes)}, more than the ${mb(limits.budgetBytes)} a run may fill under ` +
        "Temporal's 50 MB history limit; return large outputs by reference, or split the pipeline",
    };
  if (ledger.recorded + ledger.reserved + step.reservationBytes > limits.budgetBytes)
    return { decision: 'wait' };
  return { decision: 'start' };
}
