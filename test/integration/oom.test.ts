/**
 * Elastic memory: a step that outgrows its memory request is killed for
 * memory and retried with twice the request, up to the cap (one node of its
 * group: 2048 MB in config/node-groups.json). The runner holds each step to
 * its request (ray-tasks/pantheon_runtime/memory_guard.py); both guards are
 * exercised: `cgroup` (the kernel kills the worker) and `rlimit` (the
 * allocation is refused).
 */
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { PipelineResult } from '../../core/schemas/pipeline-spec';
import { startTestEnv, type TestEnv } from '../helpers/test-env';

const ALLOC = 'pantheon_tasks.testkit:alloc';

/** Why each retried attempt was retried, from the workflow history (ActivityTaskStarted.lastFailure). */
async function retryReasons(handle: WorkflowHandle): Promise<string[]> {
  const history = await handle.fetchHistory();
  return (history.events ?? [])
    .map((e) => e.activityTaskStartedEventAttributes?.lastFailure?.message)
    .filter((m): m is string => typeof m === 'string');
}

async function run(env: TestEnv, mb: number, memoryMb: number) {
  const handle = await env.startPipeline({
    name: 'oom',
    project: 'drills',
    steps: [{ id: 'grow', task: ALLOC, args: [mb], resources: { cpus: 1, memoryMb } }],
  });
  const outcome = await handle.result().then(
    (r) => r as PipelineResult,
    (e: unknown) => e,
  );
  return { outcome, reasons: await retryReasons(handle) };
}

const GUARDS = [
  { guard: 'cgroup', evidence: /killed by the kernel for using more than its memory request of (\d+) MB/ },
  {
    guard: 'rlimit',
    evidence: /needed more than its memory request of (\d+) MB \(allocation refused by the rlimit/,
  },
] as const;

describe.each(GUARDS)('memory guard $guard', ({ guard, evidence }) => {
  let env: TestEnv;
  beforeAll(async () => {
    env = await startTestEnv({ env: { PANTHEON_MEMORY_GUARD: guard } });
  });
  afterAll(async () => {
    await env?.close();
  });

  test('alloc(700 MB) asking for 256 MB: retried with 512, then 1024 MB, and succeeds', async () => {
    const { outcome, reasons } = await run(env, 700, 256);
    expect(outcome).not.toBeInstanceOf(Error);
    const step = (outcome as PipelineResult).steps.grow;
    expect(step).toMatchObject({ status: 'succeeded', output: 700, attempts: 3, memoryMb: 1024 });
    expect(step?.tries?.map((t) => [t.outcome, t.memoryMb])).toEqual([
      ['oom', 256],
      ['oom', 512],
      ['succeeded', 1024],
    ]);
    expect(step?.tries?.map((t) => evidence.exec(t.reason ?? '')?.[1])).toEqual(['256', '512', undefined]);
    // Temporal's history keeps the failure that led to the last attempt.
    expect(reasons.map((r) => evidence.exec(r)?.[1])).toEqual(['512']);
  });

  test('alloc above the node’s memory: doubled up to the 2048 MB cap, then a clear non-retryable failure', async () => {
    const { outcome, reasons } = await run(env, 2500, 512);
    expect(outcome).toBeInstanceOf(WorkflowFailedError);
    const message = String((outcome as WorkflowFailedError).cause?.message);
    expect(message).toMatch(/StepMemoryCapReached/);
    expect(message).toMatch(/ran out of memory with memoryMb=2048, the cap \(2048 MB/);
    // The failure at the cap carries the last kill's evidence; the history the one before it.
    expect(evidence.exec(message)?.[1]).toBe('2048');
    expect(reasons.map((r) => evidence.exec(r)?.[1])).toEqual(['1024']);
  });
});
