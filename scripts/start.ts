/**
 * `npm start` / `npm run demo`: brings up the local stack and a worker, runs
 * the example pipeline, prints each step's result and the Web UI link.
 * `npm start` then keeps everything up until Ctrl-C; `npm run demo` (--exit)
 * tears down and exits 0 once the pipeline has succeeded. Whatever this script
 * started, it stops; a stack that was already up is left up.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { Command } from 'commander';
import { loadWorkerConfig } from '../workers/config';
import { createLogger } from '../workers/logger';
import { createPantheonWorker } from '../workers/pantheon-worker';
import { AUTOSCALER_WORKFLOW_ID } from '../core/schemas/autoscaler';
import type { PipelineResult } from '../core/schemas/pipeline-spec';
import { PIPELINE_TASK_QUEUE } from '../core/task-queues';
import { loadStackConfig, localRayClientEnv, REPO_ROOT } from '../stack/config';
import { stackDown, stackIsUp, stackUp } from '../stack/local-stack';

const say = (line: string) => process.stdout.write(`${line}\n`);

async function main(): Promise<void> {
  const options = new Command('start')
    .option('--exit', 'exit once the example pipeline has finished, tearing down what was started')
    .option('--spec <file>', 'pipeline spec to run', path.join(REPO_ROOT, 'scripts', 'demo-pipeline.json'))
    .parse()
    .opts<{ exit?: boolean; spec: string }>();

  const stack = loadStackConfig();
  const ownsStack = !stackIsUp(stack);
  say(
    ownsStack
      ? 'Starting the local stack (Temporal, Ray, Qdrant)…'
      : 'Using the local stack that is already up.',
  );
  await stackUp(stack);
  // The worker runs in this process: its bridge and dashboard calls read Ray's token from here.
  Object.assign(process.env, localRayClientEnv(stack));

  const config = loadWorkerConfig({
    ...process.env,
    TEMPORAL_ADDRESS: stack.temporal.address,
    RAY_ADDRESS: stack.ray.address,
    RAY_DASHBOARD_URL: stack.ray.dashboardUrl,
    ...localRayClientEnv(stack),
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  });
  const worker = await createPantheonWorker(config, createLogger(config.logLevel));
  const workerDone = worker.run();

  let ok = false;
  const connection = await Connection.connect({ address: config.temporal.address });
  const client = new Client({ connection, namespace: config.temporal.namespace });
  try {
    // One autoscaler per cluster: an autoscaler already running is kept as it is.
    const autoscaler = await client.workflow.start('autoscaler', {
      taskQueue: PIPELINE_TASK_QUEUE,
      workflowId: AUTOSCALER_WORKFLOW_ID,
      args: [{}],
      workflowIdConflictPolicy: 'USE_EXISTING',
      staticSummary: 'autoscaler: resizes the Ray node groups from their task-queue backlog',
    });
    say(
      `Autoscaler running as workflow ${autoscaler.workflowId}\n  Web UI: http://127.0.0.1:${stack.temporal.uiPort}/namespaces/${config.temporal.namespace}/workflows/${autoscaler.workflowId}`,
    );
    const spec = JSON.parse(fs.readFileSync(options.spec, 'utf8')) as { name: string };
    const workflowId = `${spec.name}-${Date.now()}`;
    const webUi = `http://127.0.0.1:${stack.temporal.uiPort}/namespaces/${config.temporal.namespace}/workflows/${workflowId}`;
    say(`Running pipeline "${spec.name}" as workflow ${workflowId}\n  Web UI: ${webUi}`);
    const handle = await client.workflow.start('pipeline', {
      taskQueue: PIPELINE_TASK_QUEUE,
      workflowId,
      args: [spec],
      staticSummary: `example pipeline ${spec.name}`,
    });
    const result = (await handle.result()) as PipelineResult;
    for (const [id, step] of Object.entries(result.steps)) {
      const output = JSON.stringify(step.output) ?? '';
      say(
        `  ${id.padEnd(10)} ${step.status.padEnd(10)} ${(step.agent ?? 'task').padEnd(8)} attempts=${step.attempts} node=${step.node?.slice(0, 8)} output=${output.length > 100 ? `${output.slice(0, 99)}…` : output}`,
      );
    }
    ok = true;
    say(`Pipeline finished. Web UI: ${webUi}`);
  } finally {
    if (ok && !options.exit) {
      say('The stack and the worker stay up; press Ctrl-C to stop.');
      await new Promise<void>((resolve) =>
        process.once('SIGINT', () => resolve()).once('SIGTERM', () => resolve()),
      );
    }
    // The dev server keeps workflows in its file: an autoscaler left running would
    // wake up with the next worker on this stack (a test run's, say) and resize it.
    if (ownsStack)
      await client.workflow
        .getHandle(AUTOSCALER_WORKFLOW_ID)
        .terminate('the local stack that npm start brought up is going down')
        .catch(() => undefined);
    await connection.close();
    worker.shutdown();
    await workerDone;
    if (ownsStack) {
      say('Stopping the local stack…');
      await stackDown(stack);
    }
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
