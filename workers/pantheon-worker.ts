/**
 * One Pantheon worker process: a Ray bridge, the pipeline worker on the
 * `pantheon` queue (workflows + control activities), and one worker per node
 * group on that group's queue (Ray step activities), admitted cluster-wide by
 * the dispatcher's ledger (cluster-admission.ts).
 */
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import {
  createControlActivities,
  createPipelineControlActivities,
  createRayTaskActivities,
} from '../activities';
import { PythonHelper } from '../stack/python-helper';
import { DispatcherClient } from '../activities/ray/dispatcher-client';
import { startDispatcherRetention } from '../activities/ray/dispatcher-retention';
import { startBlobRetention } from '../activities/ray/blob-retention';
import { temporalWorkflowStates } from '../stack/blob-store';
import { createRayJobActivities } from '../activities/ray/job-step';
import { workflowClosedCheck } from '../activities/ray/workflow-liveness';
import { memoryConfigFromEnv } from '../activities/memory/config';
import { createMemoryActivities, lazyMemoryStore } from '../activities/memory/memory-activities';
import { createAutoscalerActivities } from '../activities/scaling/activities';
import { AutoscalerMetrics } from '../activities/scaling/metrics';
import { createNodeProviders, type NodeProviders } from '../activities/scaling/providers';
import { loadNodeGroups, loadStackConfig, memoryEnv } from '../stack/config';
import { PIPELINE_TASK_QUEUE, nodeGroupTaskQueue } from '../core/task-queues';
import type { WorkerConfig } from './config';
import { installSdkLogging } from './logger';
import { startMetricsServer, type MetricsServer } from './metrics-server';
import { ClusterAdmission } from './cluster-admission';
import { stepStartNotifier } from './step-start-notifier';

export interface PantheonWorker {
  bridge: PythonHelper;
  /** The dispatcher, through the bridge. */
  dispatcher: DispatcherClient;
  /** This worker's lease in the cluster-wide admission ledger. */
  admission: ClusterAdmission;
  /** The node providers the autoscaler's activities use. */
  nodeProviders: NodeProviders;
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
  // A client for what workers tell Temporal themselves: step start signals,
  // priority changes, agent performance records.
  const clientConnection = await Connection.connect({
    address: config.temporal.address,
    tls: config.temporal.tls,
    apiKey: config.temporal.apiKey,
  });
  const client = new Client({ connection: clientConnection, namespace: config.temporal.namespace });
  const bridge = new PythonHelper({
    python: config.python,
    rayTasksDir: config.rayTasksDir,
    rayAddress: config.ray.address,
    logger: logger.child({ component: 'bridge' }),
  });
  try {
    await bridge.start();
  } catch (err) {
    await connection.close();
    await clientConnection.close();
    throw err;
  }

  // The autoscaler's activities (observe, apply) run here, on the pipeline worker.
  const metricsRegistry = new Registry();
  const stack = loadStackConfig();
  const nodeProviders = await createNodeProviders({
    groups,
    // Local nodes join the Ray cluster this worker uses, whatever ports the stack was given.
    stack: {
      ...stack,
      ray: { ...stack.ray, address: config.ray.address, dashboardUrl: config.ray.dashboardUrl },
    },
    bridge,
    kuberay: config.kuberay,
    logger: logger.child({ component: 'node-provider' }),
  });

  const memoryStore = lazyMemoryStore(() => memoryConfigFromEnv({ ...process.env, ...memoryEnv(stack) }));

  const workflowSource: Partial<WorkerOptions> = options.workflowBundlePath
    ? { workflowBundle: { codePath: options.workflowBundlePath } }
    : { workflowsPath: require.resolve('../agents/workflows') };
  const pipelineWorker = await Worker.create({
    connection,
    namespace: config.temporal.namespace,
    taskQueue: PIPELINE_TASK_QUEUE,
    ...workflowSource,
    activities: {
      ...createControlActivities({
        nodeGroups: groups,
        allowedTaskPackages: config.allowedTaskPackages,
        jobPolicy: config.jobPolicy,
      }),
      ...createPipelineControlActivities(client, logger.child({ component: 'pipeline-control' })),
      ...createMemoryActivities(memoryStore),
      ...createAutoscalerActivities({
        workflowService: connection.workflowService,
        namespace: config.temporal.namespace,
        bridge,
        nodeGroups: groups,
        providerFor: nodeProviders.providerFor,
        metrics: new AutoscalerMetrics(metricsRegistry),
        logger: logger.child({ component: 'autoscaler' }),
      }),
    },
  });

  const dispatcher = new DispatcherClient(bridge);
  const admission = new ClusterAdmission(dispatcher, logger.child({ component: 'admission' }));
  const rayActivities = createRayTaskActivities(
    dispatcher,
    {
      allowedTaskPackages: config.allowedTaskPackages,
      maxResultBytes: config.maxResultBytes,
      blobThresholdBytes: config.blobThresholdBytes,
      blobUrl: config.blobUrl,
      statusPollMs: config.statusPollMs,
      cancelGraceMs: config.cancelGraceMs,
      memoryGuard: config.memoryGuard,
      maxStepMemoryMb: config.maxStepMemoryMb,
      firstOomMemoryMb: config.firstOomMemoryMb,
      nodeGroups: groups,
      workflowClosed: workflowClosedCheck(client),
      admission,
    },
    logger.child({ component: 'ray-step' }),
  );
  const rayJobActivities = createRayJobActivities(
    {
      dashboardUrl: config.ray.dashboardUrl,
      statusPollMs: config.statusPollMs,
      logTailBytes: config.jobLogTailBytes,
      stopWaitMs: config.cancelGraceMs + 10_000,
      workflowClosed: workflowClosedCheck(client),
      policy: config.jobPolicy,
    },
    logger.child({ component: 'ray-job' }),
  );
  const groupWorkers: Worker[] = [];
  for (const group of groups) {
    groupWorkers.push(
      await Worker.create({
        connection,
        namespace: config.temporal.namespace,
        taskQueue: nodeGroupTaskQueue(group.name),
        activities: { ...rayActivities, ...rayJobActivities },
        interceptors: {
          activity: [
            admission.interceptor(group.name),
            stepStartNotifier(client, logger.child({ component: 'step-start' }), config.startSignalDelayMs),
          ],
        },
        // Cancellation reaches a step through its heartbeat: flush them often.
        maxHeartbeatThrottleInterval: '1s',
        tuner: {
          activityTaskSlotSupplier: admission.slotSupplier(group.name),
          workflowTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
          localActivityTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
          nexusTaskSlotSupplier: { type: 'fixed-size', numSlots: 1 },
        },
      }),
    );
  }

  await admission.start();

  const workers = [pipelineWorker, ...groupWorkers];
  return {
    bridge,
    dispatcher,
    admission,
    nodeProviders,
    async run() {
      let metricsServer: MetricsServer | null = null;
      let stopRetention: (() => void) | undefined;
      let stopBlobRetention: (() => void) | undefined;
      try {
        if (config.metrics) metricsServer = await startMetricsServer(metricsRegistry, config.metrics);
        stopRetention = startDispatcherRetention(
          dispatcher,
          workflowClosedCheck(client),
          config.dispatcherSweepMs,
          logger.child({ component: 'dispatcher-retention' }),
        );
        if (config.blobRetention)
          stopBlobRetention = startBlobRetention(
            config.blobRetention,
            temporalWorkflowStates(client),
            logger.child({ component: 'blob-retention' }),
          );
        await Promise.all(workers.map((w) => w.run()));
      } finally {
        stopRetention?.();
        stopBlobRetention?.();
        await admission.close();
        await metricsServer?.close();
        await nodeProviders.close();
        await bridge.close();
        await connection.close();
        await clientConnection.close();
      }
    },
    shutdown() {
      for (const w of workers) if (w.getState() === 'RUNNING') w.shutdown();
    },
  };
}
