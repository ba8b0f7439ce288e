/**
 * Priority and fairness end to end: Temporal orders the step activities, the
 * Ray-capacity slot supplier admits only what Ray can run at once, so the
 * order Temporal chooses is the order steps start in. Order is read from the
 * recorded start times of the steps (the `stepAttemptStarted` signal each
 * attempt sends, in the pipeline's history), never inferred from sleeps.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { groupCpuCapacity, listRayNodes } from '../../stack/ray-cluster-state';
import type { PipelineResult, StepResult } from '../../core/schemas/pipeline-spec';
import { priorityOrder, sleepSteps } from '../helpers/priority-order';
import { startTestEnv, waitUntil, type TestEnv } from '../helpers/test-env';

const RESULTS_DIR = path.resolve(__dirname, '..', '..', 'test-results');

let env: TestEnv;
let capacity: number;
beforeAll(async () => {
  env = await startTestEnv();
  // What Ray reports, which is what the worker's admission gate is sized by.
  capacity = await waitUntil('Ray CPUs of the cpu group', async () => {
    const cpus = groupCpuCapacity(await listRayNodes(env.config.ray.dashboardUrl), 'cpu');
    return cpus > 0 ? cpus : undefined;
  });
});
afterAll(async () => {
  await env?.close();
});

/** Waits until every step of the pipeline is in Temporal's queue or running. */
async function allScheduled(handle: WorkflowHandle, steps: number): Promise<PipelineResult> {
  return waitUntil(`${handle.workflowId} to schedule its ${steps} steps`, async () => {
    const p = await env.progress(handle);
    const scheduled = Object.values(p.steps).filter((s) => s.scheduledAtMs !== undefined).length;
    return scheduled === steps ? p : undefined;
  });
}

const started = (s: StepResult) => s.startedAtMs!;
const queueWait = (s: StepResult) => s.startedAtMs! - s.scheduledAtMs!;

function record(name: string, data: unknown): void {
  fs.mkdirSync(RESULTS_DIR, { recursive: true });
  fs.writeFileSync(path.join(RESULTS_DIR, `${name}.json`), JSON.stringify(data, null, 2));
  process.stderr.write(`[${name}] ${JSON.stringify(data)}\n`);
}

describe('priority and fairness on a saturated cluster', () => {
  test('every step activity carries the pipeline priority, its project/user fairness key and weight', async () => {
    const handle = await env.startPipeline({
      name: 'keys',
      project: 'acme',
      user: 'ada',
      priority: 2,
      fairnessWeight: 3,
      steps: [{ id: 'a', task: 'pantheon_tasks.testkit:echo', args: [1] }],
    });
    await handle.result();
    const history = await handle.fetchHistory();
    const scheduled = history.events?.find(
      (e) => e.activityTaskScheduledEventAttributes?.activityId === 'step:a',
    );
    expect(scheduled?.activityTaskScheduledEventAttributes?.priority).toMatchObject({
      priorityKey: 2,
      fairnessKey: 'acme/ada',
      fairnessWeight: 3,
    });
  });

  test('a priority-1 pipeline started after a backlog of priority-5 steps starts all its steps first', async () => {
    const lowSteps = capacity * 4;
    const low = await env.startPipeline({
      name: 'backlog',
      project: 'prio',
      priority: 5,
      steps: sleepSteps('low', lowSteps, 3),
    });
    // The cluster is saturated and the rest of the backlog waits in Temporal.
    await waitUntil('the backlog to fill the cluster', async () => {
      const p = await env.progress(low);
      const running = Object.values(p.steps).filter((s) => s.status === 'running').length;
      const queued = Object.values(p.steps).filter((s) => s.status === 'queued').length;
      return running === capacity && queued === lowSteps - capacity ? true : undefined;
    }).catch(async (err: unknown) => {
      // What admission saw and did (its newest events): the first thing to read when this fails.
      record('priority-admission-state', await env.worker!.dispatcher.admissionState());
      throw err;
    });

    const urgent = await env.startPipeline({
      name: 'urgent',
      project: 'prio',
      priority: 1,
      steps: sleepSteps('urgent', capacity, 1),
    });
    const [lowResult, urgentResult] = (await Promise.all([
      low.result(),
      urgent.result(),
    ])) as PipelineResult[];

    // Low steps that had not started when the urgent steps were queued: the "remaining" backlog.
    const { urgentSteps, lowByStart, lastUrgentStart, remaining, overtaken } = priorityOrder(
      lowResult!,
      urgentResult!,
    );

    record('priority', {
      capacity,
      lowSteps,
      remainingLowStepsWhenUrgentQueued: remaining.length,
      lowStepsStartedBeforeLastUrgentStep: overtaken.length,
      urgentQueueWaitMs: { max: Math.max(...urgentSteps.map(queueWait)), each: urgentSteps.map(queueWait) },
      lowQueueWaitMs: { max: Math.max(...lowByStart.map(queueWait)) },
    });
    expect(urgentSteps.every((s) => s.status === 'succeeded')).toBe(true);
    expect(remaining.length).toBeGreaterThanOrEqual(lowSteps - 2 * capacity);
    expect(overtaken).toEqual([]);
    expect(Math.min(...remaining.map(started))).toBeGreaterThanOrEqual(lastUrgentStart);
  });

  test('a project with 4 steps finishes long before a project with 40 submitted first', async () => {
    const big = await env.startPipeline({
      name: 'big-batch',
      project: 'bigco',
      steps: sleepSteps('big', 40, 1.5),
    });
    await allScheduled(big, 40);
    const small = await env.startPipeline({
      name: 'small-batch',
      project: 'smallco',
      steps: sleepSteps('small', 4, 1.5),
    });
    const [bigResult, smallResult] = (await Promise.all([big.result(), small.result()])) as PipelineResult[];

    const bigSteps = Object.values(bigResult!.steps);
    const smallSteps = Object.values(smallResult!.steps);
    const smallSubmitted = Math.min(...smallSteps.map((s) => s.scheduledAtMs!));
    const smallDone = Math.max(...smallSteps.map((s) => s.finishedAtMs!));
    const bigDone = Math.max(...bigSteps.map((s) => s.finishedAtMs!));
    const bigStepsStartedBeforeSmallDone = bigSteps.filter((s) => started(s) < smallDone).length;

    record('fairness', {
      capacity,
      smallQueueWaitMs: { max: Math.max(...smallSteps.map(queueWait)), each: smallSteps.map(queueWait) },
      bigQueueWaitMs: { max: Math.max(...bigSteps.map(queueWait)) },
      smallFinishedAfterMs: smallDone - smallSubmitted,
      bigFinishedAfterMs: bigDone - smallSubmitted,
      bigStepsStartedBeforeSmallFinished: bigStepsStartedBeforeSmallDone,
    });
    expect([...bigSteps, ...smallSteps].every((s) => s.status === 'succeeded')).toBe(true);
    // First come, first served would start 36 more big steps before the small project's first.
    expect(bigStepsStartedBeforeSmallDone).toBeLessThan(20);
    expect(smallDone - smallSubmitted).toBeLessThan((bigDone - smallSubmitted) / 2);
  });
});
