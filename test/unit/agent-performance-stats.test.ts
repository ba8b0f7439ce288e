import fc from 'fast-check';
import {
  emptyPerformance,
  observeRun,
  RECENT_RUNS,
  summarizePerformance,
  type AgentRunObservation,
} from '../../core/agent-performance-stats';

const run = (key: string, over: Partial<AgentRunObservation> = {}): AgentRunObservation => ({
  agent: 'a',
  key,
  succeeded: true,
  attempts: 1,
  runningMs: 1000,
  peakMemoryMb: 100,
  cpuSeconds: 0.5,
  observedAtMs: 10,
  ...over,
});

describe('agent performance record', () => {
  it('summarizes durations, peak memory and the failure rate over attempts', () => {
    let state = emptyPerformance('a');
    state = observeRun(state, run('w/1', { runningMs: 1000, peakMemoryMb: 120 }));
    state = observeRun(state, run('w/2', { runningMs: 3000, peakMemoryMb: 200, attempts: 3 }));
    state = observeRun(state, run('w/3', { succeeded: false, attempts: 2, runningMs: undefined }));
    expect(summarizePerformance(state)).toMatchObject({
      runs: 3,
      attempts: 6,
      failedAttempts: 4,
      failureRate: 4 / 6,
      meanDurationMs: 2000,
      maxDurationMs: 3000,
      peakMemoryMb: 200,
    });
  });

  it('counts a run reported twice once', () => {
    const once = observeRun(emptyPerformance('a'), run('w/1'));
    expect(observeRun(once, run('w/1'))).toBe(once);
  });

  it('judges memory and duration on recent runs only', () => {
    let state = observeRun(emptyPerformance('a'), run('old', { peakMemoryMb: 5000 }));
    for (let i = 0; i < RECENT_RUNS; i++) state = observeRun(state, run(`new-${i}`, { peakMemoryMb: 100 }));
    expect(summarizePerformance(state).peakMemoryMb).toBe(100);
  });

  it('failure rate stays within [0, 1] and runs count every distinct key', () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ ok: fc.boolean(), attempts: fc.integer({ min: 1, max: 6 }) }), {
          maxLength: 60,
        }),
        (runs) => {
          let state = emptyPerformance('a');
          runs.forEach(
            (r, i) => (state = observeRun(state, run(`k${i}`, { succeeded: r.ok, attempts: r.attempts }))),
          );
          const summary = summarizePerformance(state);
          expect(summary.runs).toBe(runs.length);
          expect(summary.failureRate).toBeGreaterThanOrEqual(0);
          expect(summary.failureRate).toBeLessThanOrEqual(1);
        },
      ),
    );
  });
});
