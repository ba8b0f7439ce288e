/**
 * A node group's backlog as Temporal reports it: `DescribeTaskQueue` on the
 * group's activity task queue with `reportStats`. Steps wait there, not in Ray
 * (the group's worker admits only what its nodes can run), so this is the real
 * queue depth (DESIGN.md, principle 1). The numbers are approximate and the
 * server caches them briefly (`matching.TaskQueueInfoByBuildIdTTL`, 5 s by
 * default, 200 ms on the local dev server); they converge, which is what a
 * control loop needs.
 */
import type { WorkflowService } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { z } from 'zod';
import { describeZodError } from '../../core/issues';

export const taskQueueBacklogSchema = z.object({
  backlogCount: z.number().int().min(0),
  backlogAgeSeconds: z.number().min(0),
  /** Tasks per second added to and dispatched from the queue (Temporal averages over 30 s). */
  addRate: z.number().min(0),
  dispatchRate: z.number().min(0),
});

export type TaskQueueBacklog = z.infer<typeof taskQueueBacklogSchema>;

/** The one RPC this module needs, so a caller can pass a client's or a worker connection's service. */
export type DescribeTaskQueue = Pick<WorkflowService, 'describeTaskQueue'>;

/** Long (protobufjs), number or null → number. */
function toNumber(value: { toNumber(): number } | number | null | undefined): number {
  if (value === null || value === undefined) return 0;
  return typeof value === 'number' ? value : value.toNumber();
}

export async function readTaskQueueBacklog(
  service: DescribeTaskQueue,
  namespace: string,
  taskQueue: string,
): Promise<TaskQueueBacklog> {
  const response = await service.describeTaskQueue({
    namespace,
    taskQueue: { name: taskQueue, kind: temporal.api.enums.v1.TaskQueueKind.TASK_QUEUE_KIND_NORMAL },
    taskQueueType: temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY,
    reportStats: true,
  });
  const stats = response.stats;
  if (!stats)
    throw new Error(`Temporal reported no stats for task queue ${taskQueue} (reportStats ignored?)`);
  const age = stats.approximateBacklogAge;
  const parsed = taskQueueBacklogSchema.safeParse({
    backlogCount: toNumber(stats.approximateBacklogCount),
    backlogAgeSeconds: toNumber(age?.seconds) + (age?.nanos ?? 0) / 1e9,
    addRate: stats.tasksAddRate ?? 0,
    dispatchRate: stats.tasksDispatchRate ?? 0,
  });
  if (!parsed.success) {
    throw new Error(`task queue ${taskQueue}: unexpected stats: ${describeZodError(parsed.error)}`);
  }
  return parsed.data;
}
