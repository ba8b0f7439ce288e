/**
 * The one test environment every integration test uses: a Temporal client and
 * an in-process Pantheon worker (bridge included) against the local stack that
 * the global setup started.
 */
import * as crypto from 'node:crypto';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import type { Logger } from 'pino';
import { waitFor } from '../../stack/processes';
import { loadWorkerConfig, type WorkerConfig } from '../../workers/config';
import { createPantheonWorker, type PantheonWorker } from '../../workers/pantheon-worker';
import { progressQuery } from '../../core/messages/pipeline';
import type { PipelineResult, PipelineSpecInput } from '../../core/schemas/pipeline-spec';
import { PIPELINE_TASK_QUEUE } from '../../core/task-queues';
import { startWorkerProcess, type WorkerProcess } from './worker-process';
import { createTestLogger } from './test-log';

export interface TestEnv {
  client: Client;
  config: WorkerConfig;
  logger: Logger;
  /** Null when started with `{ worker: false }`. */
  worker: PantheonWorker | null;
  /** Starts the JSON `pipeline` workflow, with a static summary for the Web UI as the CLI gives it. */
  startPipeline(spec: PipelineSpecInput | unknown, workflowId?: string): Promise<WorkflowHandle>;
  runPipeline(spec: PipelineSpecInput | unknown, workflowId?: string): Promise<PipelineResult>;
  /** Starts a code-defined pipeline by workflow type (e.g. `researchReport`). */
  startCodePipeline(
    workflowType: string,
    start: {
      project: string;
      priority?: number;
      user?: string;
      fairnessWeight?: number;
      maxInFlightSteps?: number;
      input: unknown;
    },
    workflowId?: string,
  ): Promise<WorkflowHandle>;
  /** The pipeline's `progress` query. */
  progress(handle: WorkflowHandle): Promise<PipelineResult>;
  /** Starts another in-process worker (e.g. after the first was killed). */
  startWorker(): Promise<PantheonWorker>;
  /** Starts a worker in a child process of its own, which a fault test can kill -9. */
  startWorkerProcess(env?: NodeJS.ProcessEnv): Promise<WorkerProcess>;
  close(): Promise<void>;
}

export function uniqueId(prefix: string): string {
  return `${prefix}-${crypto.randomBytes(5).toString('hex')}`;
}

export async function startTestEnv(
  options: { worker?: boolean; env?: NodeJS.ProcessEnv } = {},
): Promise<TestEnv> {
  const config = loadWorkerConfig({
    ...process.env,
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    ...options.env,
  });
  const logger = createTestLogger(config.logLevel, 'pantheon-test');
  const connection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({ connection, namespace: config.temporal.namespace });
  const running: { worker: PantheonWorker; done: Promise<void> }[] = [];

  const startWorker = async () => {
    const worker = await createPantheonWorker(config, logger, {
      workflowBundlePath: process.env.PANTHEON_WORKFLOW_BUNDLE,
    });
    running.push({ worker, done: worker.run() });
    return worker;
  };
  const worker = options.worker === false ? null : await startWorker();
  const processes: WorkerProcess[] = [];

  const startPipeline = (spec: unknown, workflowId = uniqueId('pipeline')) => {
    const described = spec as { name?: unknown; project?: unknown; steps?: unknown };
    const steps = Array.isArray(described?.steps) ? described.steps.length : 0;
    return client.workflow.start('pipeline', {
      taskQueue: PIPELINE_TASK_QUEUE,
      workflowId,
      args: [spec],
      staticSummary: `pipeline ${String(described?.name)} for ${String(described?.project)}: ${steps} steps`,
    });
  };

  return {
    client,
    config,
    logger,
    worker,
    startPipeline,
    async runPipeline(spec, workflowId) {
      const handle = await startPipeline(spec, workflowId);
      return (await handle.result()) as PipelineResult;
    },
    startCodePipeline(workflowType, start, workflowId = uniqueId(workflowType)) {
      return client.workflow.start(workflowType, {
        taskQueue: PIPELINE_TASK_QUEUE,
        workflowId,
        args: [start],
        staticSummary: `${workflowType} for ${start.project}`,
      });
    },
    progress(handle) {
      return handle.query(progressQuery);
    },
    startWorker,
    async startWorkerProcess(env) {
      const child = await startWorkerProcess({ ...options.env, ...env });
      processes.push(child);
      return child;
    },
    async close() {
      for (const { worker: w } of running) w.shutdown();
      await Promise.allSettled([...running.map((r) => r.done), ...processes.map((p) => p.stop())]);
      await connection.close();
    },
  };
}

/**
 * Polls `probe` until it returns something other than undefined: the way tests
 * wait for a condition on a real service instead of sleeping for a guess. The
 * stack's own `waitFor`, with the defaults tests want.
 */
export function waitUntil<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs = 60_000,
  intervalMs = 200,
): Promise<T> {
  return waitFor(what, probe, timeoutMs, intervalMs);
}
