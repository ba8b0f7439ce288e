/**
 * The one test environment every integration test uses: a Temporal client and
 * an in-process Pantheon worker (bridge included) against the local stack that
 * the global setup started.
 */
import * as crypto from 'node:crypto';
import { Client, Connection, type WorkflowHandle } from '@temporalio/client';
import type { Logger } from 'pino';
import { loadWorkerConfig, type WorkerConfig } from '../../workers/config';
import { createLogger } from '../../workers/logger';
import { createPantheonWorker, type PantheonWorker } from '../../workers/pantheon-worker';
import type { PipelineResult, PipelineSpecInput } from '../../workflows/schemas/pipeline-spec';
import { PIPELINE_TASK_QUEUE } from '../../workflows/task-queues';

export interface TestEnv {
  client: Client;
  config: WorkerConfig;
  logger: Logger;
  /** Null when started with `{ worker: false }`. */
  worker: PantheonWorker | null;
  startPipeline(spec: PipelineSpecInput | unknown, workflowId?: string): Promise<WorkflowHandle>;
  runPipeline(spec: PipelineSpecInput | unknown, workflowId?: string): Promise<PipelineResult>;
  /** Starts another in-process worker (e.g. after the first was killed). */
  startWorker(): Promise<PantheonWorker>;
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
  const logger = createLogger(config.logLevel, 'pantheon-test');
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

  const startPipeline = (spec: unknown, workflowId = uniqueId('pipeline')) =>
    client.workflow.start('pipeline', { taskQueue: PIPELINE_TASK_QUEUE, workflowId, args: [spec] });

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
    startWorker,
    async close() {
      for (const { worker: w } of running) w.shutdown();
      await Promise.allSettled(running.map((r) => r.done));
      await connection.close();
    },
  };
}
