/**
 * One Pantheon worker process: a Ray bridge, the pipeline worker on the
 * `pantheon` queue (workflows + control activities), and one worker per node
 * group on that group's queue (Ray step activities), admitted by Ray capacity.
 */
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { Logger } from 'pino';
import { createControlActivities, createRayTaskActivities } from '../activities';
import { RayBridge } from '../activities/ray/bridge-client';
import { listRayNodes } from '../activities/ray/cluster-state';
import { loadNodeGroups } from '../scripts/lib/stack-config';
import { PIPELINE_TASK_QUEUE, nodeGroupTaskQueue } from '../workflows/task-queues';
import type { WorkerConfig } from './config';
import { installSdkLogging } from './logger';
import { groupCpuCapacity, RayCapacitySlotSupplier } from './ray-capacity-slots';

export interface PantheonWorker {
  bridge: RayBridge;
  capacity: Map<string, RayCapacitySlotSupplier>;
  /** Runs until shutdown() or a shutdown signal, then closes what it opened. */
  run(): Promise<void>;
  shutdown(): void;
}

export interface PantheonWorkerOptions {
  /** A prebuilt workflow bundle (tests build one once); otherwise the workflows are bundled at start. */
  workflowBundlePath?: string;
}

export async function createPantheonWorker(
  config: WorkerConfig,
  logger: Logger,
  options: PantheonWorkerOptions = {},
): Promise<PantheonWorker> {
  installSdkLogging(logger);
  const { groups } = loadNodeGroups(config.nodeGroupsFile);
  const connection = await NativeConnection.connect({
    address: config.temporal.address,
    tls: config.temporal.tls,
    apiKey: config.temporal.apiKey,
  });
  const bridge = new RayBridge({
    python: config.python,
    rayTasksDir: config.rayTasksDir,
    rayAddress: config.ray.address,
    logger: logger.child({ component: 'bridge' }),
  });
  try {
    await bridge.start();
  } catch (err) {
    await connection.close();
    throw err;
  }

  const workflowSource: Partial<WorkerOptions> = options.workflowBundlePath
    ? { workflowBundle: { codePath: options.workflowBundlePath } }
    : { workflowsPath: require.resolve('../workflows') };
  const pipelineWorker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: PIPELINE_TASK_QUEUE,
    ...workflowSource,
    activities: createControlActivities({
      nodeGroups: groups,
      allowedTaskPackages: config.allowedTaskPackages,
    }),
  });

  const rayActivities = createRayTaskActivities(
    bridge,
    {
      allowedTaskPackages: config.allowedTaskPackages,
      maxResultBytes: config.maxResultBytes,
      statusPollMs: config.statusPollMs,
      cancelGraceMs: config.cancelGraceMs,
    },
    logger.child({ component: 'ray-step' }),
  );
  const capacity = new Map<string, RayCapacitySlotSupplier>();
  const groupWorkers: Worker[] = [];
  for (const group of groups) {
    const slots = new RayCapacitySlotSupplier(group.name, logger);
    capacity.set(group.name, slots);
    groupWorkers.push(
      await Worker.create({
        connection,
        namespace: config.temporal.namespace,
        taskQueue: nodeGroupTaskQueue(group.name),
        activities: rayActivities,
        // Cancellation reaches a step through its heartbeat: flush them often.
        maxHeartbeatThrottleInterval: '1s',
        tuner: {
          activityTaskSlotSupplier: slots,
          workflowTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
          localActivityTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
          nexusTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
        },
      }),
    );
  }

  const refreshCapacity = async () => {
    try {
      const nodes = await listRayNodes(config.ray.dashboardUrl);
      for (const [group, slots] of capacity) slots.setCapacity(groupCpuCapacity(nodes, group));
    } catch (err) {
      logger.warn({ err }, 'could not read Ray nodes; admission unchanged');
    }
  };
  await refreshCapacity();
  const capacityTimer = setInterval(() => void refreshCapacity(), config.capacityRefreshMs);

  const workers = [pipelineWorker, ...groupWorkers];
  return {
    bridge,
    capacity,
    async run() {
      try {
        await Promise.all(workers.map((w) => w.run()));
      } finally {
        clearInterval(capacityTimer);
        await bridge.close();
        await connection.close();
      }
    },
    shutdown() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    },
  };
}
