import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { startTestEnv, type TestEnv } from '../helpers/test-env';

const ECHO = 'pantheon_tasks.testkit:echo';
const SLEEP = 'pantheon_tasks.testkit:sleep';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

describe('pipeline workflow on the real stack', () => {
  test('two steps: b receives a’s output', async () => {
    const result = await env.runPipeline({
      name: 'demo',
      project: 'acme',
      priority: 3,
      steps: [
        { id: 'a', task: ECHO, args: ['hi'], resources: { cpus: 1, memoryMb: 100 } },
        { id: 'b', task: ECHO, args: [{ $step: 'a' }], dependsOn: ['a'] },
      ],
    });
    expect(result.steps.a).toMatchObject({ status: 'succeeded', output: 'hi', attempts: 1 });
    expect(result.steps.b).toMatchObject({ status: 'succeeded', output: 'hi', attempts: 1 });
    expect(result.steps.a?.node).toMatch(/^[0-9a-f]{56}$/);
  });

  test('a diamond joins both branches', async () => {
    const result = await env.runPipeline({
      name: 'diamond',
      project: 'acme',
      steps: [
        { id: 'top', task: ECHO, args: [1] },
        { id: 'left', task: ECHO, args: [{ left: { $step: 'top' } }] },
        { id: 'right', task: ECHO, args: [{ right: { $step: 'top' } }] },
        { id: 'join', task: ECHO, args: [[{ $step: 'left' }, { $step: 'right' }]] },
      ],
    });
    expect(result.steps.join?.output).toEqual([{ left: 1 }, { right: 1 }]);
  });

  test('a fan-out of 10 steps runs in parallel', async () => {
    const seconds = 2;
    const result = await env.runPipeline({
      name: 'fan-out',
      project: 'acme',
      steps: Array.from({ length: 10 }, (_, i) => ({ id: `s${i}`, task: SLEEP, args: [seconds, i] })),
    });
    for (let i = 0; i < 10; i++)
      expect(result.steps[`s${i}`]).toMatchObject({ status: 'succeeded', output: i });
    // Judged on the steps' own running intervals, so a slow Ray worker start on a
    // loaded host does not count as lost parallelism: with 4 Ray CPUs the ten
    // 2-second steps run in about three waves, far below their 20 s sum.
    const intervals = Object.values(result.steps).map((s) => ({
      start: s.finishedAtMs! - s.runningMs!,
      end: s.finishedAtMs!,
    }));
    const span = Math.max(...intervals.map((i) => i.end)) - Math.min(...intervals.map((i) => i.start));
    const sumOfSteps = intervals.reduce((sum, i) => sum + (i.end - i.start), 0);
    expect(sumOfSteps).toBeGreaterThanOrEqual(10 * seconds * 1000 * 0.95);
    expect(span).toBeLessThan(sumOfSteps * 0.6);
    const mostAtOnce = Math.max(
      ...intervals.map((i) => intervals.filter((o) => o.start < i.start + 1 && o.end > i.start + 1).length),
    );
    expect(mostAtOnce).toBeGreaterThanOrEqual(3);
    const nodes = new Set(Object.values(result.steps).map((s) => s.node));
    expect(nodes.size).toBeGreaterThan(1);
  });

  test('a step that fails twice then succeeds reports 3 attempts', async () => {
    const marker = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-fail-')), 'attempts');
    const result = await env.runPipeline({
      name: 'flaky',
      project: 'acme',
      steps: [{ id: 'flaky', task: 'pantheon_tasks.testkit:fail', args: [2, marker] }],
    });
    expect(result.steps.flaky).toMatchObject({ status: 'succeeded', attempts: 3, output: { attempt: 3 } });
    expect(fs.readFileSync(marker, 'utf8').trim().split('\n')).toHaveLength(3);
  });

  test('invalid input fails at once, naming the field', async () => {
    const handle = await env.startPipeline({
      name: 'bad',
      project: 'acme',
      steps: [{ id: 'a', task: ECHO, resources: { cpus: -1 } }],
    });
    const err = await handle.result().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect(String((err as WorkflowFailedError).cause?.message)).toMatch(/steps\[0\]\.resources\.cpus/);
  });

  test('only a step still running after the signal delay signals its start; every step knows when it started', async () => {
    const handle = await env.startPipeline({
      name: 'start-times',
      project: 'acme',
      steps: [
        { id: 'quick', task: ECHO, args: ['q'] },
        { id: 'slow', task: SLEEP, args: [2, 's'] },
      ],
    });
    const result = await handle.result();
    expect(result.status).toBe('succeeded');
    for (const step of [result.steps.quick!, result.steps.slow!]) {
      expect(step.startedAtMs).toBeGreaterThanOrEqual(step.scheduledAtMs!);
      expect(step.finishedAtMs).toBeGreaterThanOrEqual(step.startedAtMs!);
    }
    // The sleep ran for two seconds after it started, as its start time says.
    expect(result.steps.slow!.finishedAtMs! - result.steps.slow!.startedAtMs!).toBeGreaterThanOrEqual(2_000);
    // The rule, read from the history: an attempt signals its start only if it ran past the delay (500 ms).
    const events = (await handle.fetchHistory()).events ?? [];
    const eventMs = (e: (typeof events)[number]) =>
      Number(e.eventTime!.seconds) * 1000 + Math.round((e.eventTime!.nanos ?? 0) / 1e6);
    const signalled = events
      .filter((e) => e.workflowExecutionSignaledEventAttributes?.signalName === 'stepAttemptStarted')
      .map((e) => {
        const payload = e.workflowExecutionSignaledEventAttributes!.input!.payloads![0]!;
        return (JSON.parse(Buffer.from(payload.data!).toString()) as { activityId: string }).activityId;
      });
    expect(signalled.filter((id) => id === 'step:slow')).toHaveLength(1);
    const started = new Map(
      events
        .filter((e) => e.activityTaskStartedEventAttributes)
        .map((e) => [String(e.activityTaskStartedEventAttributes!.scheduledEventId), eventMs(e)]),
    );
    const scheduledIds = new Map(
      events
        .filter((e) => e.activityTaskScheduledEventAttributes)
        .map((e) => [e.activityTaskScheduledEventAttributes!.activityId!, String(e.eventId)]),
    );
    const quickCompleted = events.find(
      (e) =>
        String(e.activityTaskCompletedEventAttributes?.scheduledEventId) === scheduledIds.get('step:quick'),
    )!;
    const quickRanMs = eventMs(quickCompleted) - started.get(scheduledIds.get('step:quick')!)!;
    // (The server's view of a run is a little longer than the worker's, so past 500 ms it may go either way.)
    expect(signalled.filter((id) => id === 'step:quick').length).toBeLessThanOrEqual(
      quickRanMs < 500 ? 0 : 1,
    );
  });

  test('a task outside the allowed modules is refused before it reaches Ray', async () => {
    const handle = await env.startPipeline({
      name: 'evil',
      project: 'acme',
      steps: [{ id: 'a', task: 'os:system', args: ['true'] }],
    });
    const err = await handle.result().catch((e: unknown) => e);
    expect(String((err as WorkflowFailedError).cause?.message)).toMatch(
      /steps\[0\]\.task: task 'os:system' is outside the allowed modules/,
    );
    const history = await handle.fetchHistory();
    const scheduled = history.events?.filter((e) => e.activityTaskScheduledEventAttributes) ?? [];
    expect(scheduled.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name)).not.toContain(
      'runRayTask',
    );
  });
});
