/**
 * The history budget's decisions (core/history-budget.ts): examples of each
 * decision, byte counting, and a property — however steps of any sizes
 * start and finish, a run that follows the decisions never records more than
 * its budget, and never refuses a step that could still fit.
 */
import fc from 'fast-check';
import {
  admitStepToHistory,
  agentStepRecordedBytes,
  failureBytes,
  HISTORY_LIMITS,
  jsonBytes,
  runBaseBytes,
  stepReservationBytes,
  taskStepRecordedBytes,
  type HistoryLedgerState,
  type HistoryLimits,
} from '../../core/history-budget';

const seed = Number(process.env.PANTHEON_FC_SEED ?? Date.now() % 2 ** 31);
process.stdout.write(`[property] fast-check seed ${seed} (PANTHEON_FC_SEED=${seed} replays it)\n`);

/** Small numbers, so examples read easily: a budget of 1,000 bytes. */
const small: HistoryLimits = {
  ...HISTORY_LIMITS,
  budgetBytes: 1_000,
  maxStepOutputBytes: 100,
  maxStepInputBytes: 50,
  activityOverheadBytes: 10,
  maxFailureBytes: 20,
  maxJobLogTailBytes: 30,
  agentMemoryAllowanceBytes: 40,
  runOverheadBytes: 5,
};

describe('jsonBytes', () => {
  it('counts UTF-8 bytes of the JSON, as Temporal stores it', () => {
    expect(jsonBytes('abc')).toBe(5);
    expect(jsonBytes({ a: 1 })).toBe(7);
    expect(jsonBytes('é')).toBe(4); // 2 quotes + 2 bytes
    expect(jsonBytes('€')).toBe(5); // 3 bytes
    expect(jsonBytes('😀')).toBe(6); // a surrogate pair: 4 bytes
    expect(jsonBytes(undefined)).toBe(0);
  });

  it('agrees with Buffer.byteLength for any JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        expect(jsonBytes(value)).toBe(Buffer.byteLength(JSON.stringify(value) ?? '', 'utf8'));
      }),
      { seed, numRuns: 300 },
    );
  });
});

describe('what a step reserves and records', () => {
  it('a task reserves its input, the largest output, and its events', () => {
    expect(stepReservationBytes('task', 30, small)).toBe(30 + 100 + 10);
  });

  it("a job's failure may carry its log tail twice", () => {
    expect(failureBytes('task', small)).toBe(20);
    expect(failureBytes('job', small)).toBe(20 + 60);
  });

  it('an agent reserves the recall, its host with the memory, and the retain', () => {
    expect(stepReservationBytes('agent', 30, small)).toBe(2 * 30 + 2 * 40 + 2 * 100 + 3 * 10);
  });

  it('a finished step records what it really added, never more than it reserved', () => {
    expect(taskStepRecordedBytes('task', 30, { succeeded: true, output: 'xx' }, small)).toBe(30 + 4 + 10);
    expect(taskStepRecordedBytes('job', 30, { succeeded: false }, small)).toBe(30 + 80 + 10);
    expect(
      agentStepRecordedBytes(
        { inputBytes: 30, memoryBytes: 40, hostInputBytes: 70, outcome: { succeeded: true, output: 'x' } },
        small,
      ),
    ).toBe(30 + 40 + 70 + 2 * 3 + 30);
  });

  it('a run starts with its input, its own events and room for its result', () => {
    expect(runBaseBytes(200, 300, small)).toBe(505);
  });
});

describe('admitStepToHistory', () => {
  const step = (inputBytes: number, reservationBytes = inputBytes + 110) => ({
    id: 'fetch',
    inputBytes,
    reservationBytes,
  });

  it('starts a step that fits beside what is recorded and reserved', () => {
    expect(admitStepToHistory({ recorded: 500, reserved: 300 }, step(10, 200), small)).toEqual({
      decision: 'start',
    });
  });

  it('makes a step wait while steps in flight hold the room it needs', () => {
    expect(admitStepToHistory({ recorded: 500, reserved: 400 }, step(10, 200), small)).toEqual({
      decision: 'wait',
    });
  });

  it('refuses, naming the step, one that could not fit even when every step in flight has ended', () => {
    const refused = admitStepToHistory({ recorded: 900, reserved: 0 }, step(10, 200), small);
    expect(refused).toMatchObject({ decision: 'refuse', reason: 'HistoryBudgetExhausted' });
    expect(refused.decision === 'refuse' && refused.message).toMatch(/^step "fetch": the pipeline's history/);
  });

  it('refuses an input larger than one activity may carry, whatever room is left', () => {
    const refused = admitStepToHistory({ recorded: 0, reserved: 0 }, step(51), small);
    expect(refused).toMatchObject({ decision: 'refuse', reason: 'StepInputTooLarge' });
    expect(refused.decision === 'refuse' && refused.message).toMatch(
      /step "fetch": its resolved input takes 51 bytes as JSON, more than the 50/,
    );
  });

  it('with the real limits, a 256 KB output per step admits over 150 finished steps', () => {
    const reservation = stepReservationBytes('task', 100);
    let ledger: HistoryLedgerState = { recorded: runBaseBytes(1_000, 1_500_000), reserved: 0 };
    let finished = 0;
    while (
      admitStepToHistory(ledger, { id: 's', inputBytes: 100, reservationBytes: reservation }).decision ===
      'start'
    ) {
      ledger = {
        recorded:
          ledger.recorded +
          taskStepRecordedBytes('task', 100, { succeeded: true, output: 'x'.repeat(250_000) }),
        reserved: 0,
      };
      finished++;
    }
    expect(finished).toBeGreaterThan(150);
    expect(ledger.recorded).toBeLessThanOrEqual(HISTORY_LIMITS.budgetBytes);
  });
});

describe('a run that follows the decisions', () => {
  /** One step: its input, its kind, and what it really returns (at most the largest output). */
  const stepArb = fc.record({
    kind: fc.constantFrom('task' as const, 'job' as const),
    inputBytes: fc.integer({ min: 0, max: 60 }),
    succeeded: fc.boolean(),
    outputBytes: fc.integer({ min: 0, max: 98 }),
  });

  it('never records more than its budget, and refuses a step only when it could never fit', () => {
    fc.assert(
      fc.property(
        fc.array(stepArb, { minLength: 1, maxLength: 40 }),
        // The order in which steps in flight end: an index into those in flight, per event.
        fc.array(fc.nat(), { minLength: 40, maxLength: 80 }),
        (steps, endings) => {
          const ledger: HistoryLedgerState = { recorded: runBaseBytes(0, 0, small), reserved: 0 };
          const inFlight: { reservation: number; recorded: number }[] = [];
          const waiting = [...steps];
          let turn = 0;
          while (waiting.length > 0 || inFlight.length > 0) {
            const next = waiting[0];
            if (next) {
              const reservation = stepReservationBytes(next.kind, next.inputBytes, small);
              const admission = admitStepToHistory(
                ledger,
                { id: 's', inputBytes: next.inputBytes, reservationBytes: reservation },
                small,
              );
              if (admission.decision === 'refuse') {
                // Only when it could not fit with nothing in flight, or its input is too large.
                expect(
                  next.inputBytes > small.maxStepInputBytes ||
                    ledger.recorded + reservation > small.budgetBytes,
                ).toBe(true);
                waiting.shift();
                continue;
              }
              if (admission.decision === 'start') {
                waiting.shift();
                ledger.reserved += reservation;
                const outcome = next.succeeded
                  ? { succeeded: true as const, output: 'x'.repeat(next.outputBytes) }
                  : { succeeded: false as const };
                inFlight.push({
                  reservation,
                  recorded: taskStepRecordedBytes(next.kind, next.inputBytes, outcome, small),
                });
                continue;
              }
              // It waits: something must be in flight, or it would never start.
              expect(inFlight.length).toBeGreaterThan(0);
            }
            const index = (endings[turn++ % endings.length] ?? 0) % inFlight.length;
            const [ended] = inFlight.splice(index, 1);
            expect(ended!.recorded).toBeLessThanOrEqual(ended!.reservation);
            ledger.reserved -= ended!.reservation;
            ledger.recorded += ended!.recorded;
            expect(ledger.recorded + ledger.reserved).toBeLessThanOrEqual(small.budgetBytes);
          }
          expect(ledger.reserved).toBe(0);
        },
      ),
      { seed, numRuns: 500 },
    );
  });
});
