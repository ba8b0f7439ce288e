/**
 * The bare Temporal baseline: what a hand-written workflow calling a no-op
 * activity costs on the same dev server. Bundled on its own (not part of
 * workflows/), run by bench/bare/worker.ts on queues of its own.
 *
 * Like a pipeline step, the activity runs on a task queue other than the
 * workflow's, so both go through Temporal's matching the same way.
 */
import { proxyActivities } from '@temporalio/workflow';
import type { BareActivities } from './activities';

export const BARE_WORKFLOW_QUEUE = 'bench-bare';
export const BARE_ACTIVITY_QUEUE = 'bench-bare-activity';

const { noop, nap } = proxyActivities<BareActivities>({
  taskQueue: BARE_ACTIVITY_QUEUE,
  startToCloseTimeout: '1 minute',
});

/** One no-op activity. */
export async function bareStep(value: unknown): Promise<unknown> {
  return noop(value);
}

/** `count` no-op activities at once (or `napMs`-long ones), all awaited. */
export async function bareFanout(count: number, napMs = 0): Promise<number> {
  const calls = Array.from({ length: count }, (_, i) => (napMs > 0 ? nap(napMs, i) : noop(i)));
  return (await Promise.all(calls)).length;
}
