/**
 * The bare baseline's worker, in a process of its own like the Pantheon
 * worker: a workflow worker on `bench-bare` (prebuilt bundle) and an activity
 * worker on `bench-bare-activity`, both with the SDK's defaults — Temporal
 * activities written by hand. Prints `ready` once both poll; stops on SIGTERM.
 *
 *   BENCH_BARE_BUNDLE=… TEMPORAL_ADDRESS=… node --require tsx/cjs bench/bare/worker.ts
 */
import { NativeConnection, Runtime, Worker } from '@temporalio/worker';
import { bareActivities } from './activities';
import { BARE_ACTIVITY_QUEUE, BARE_WORKFLOW_QUEUE } from './workflows';

async function main(): Promise<void> {
  const bundle = process.env.BENCH_BARE_BUNDLE;
  if (!bundle) throw new Error('BENCH_BARE_BUNDLE is not set');
  Runtime.install({
    logger: {
      log: () => undefined,
      trace: () => undefined,
      debug: () => undefined,
      info: () => undefined,
      warn: console.warn,
      error: console.error,
    },
  });
  const connection = await NativeConnection.connect({
    address: process.env.TEMPORAL_ADDRESS ?? '127.0.0.1:7233',
  });
  const namespace = process.env.TEMPORAL_NAMESPACE ?? 'default';
  const workers = [
    await Worker.create({
      connection,
      namespace,
      taskQueue: BARE_WORKFLOW_QUEUE,
      workflowBundle: { codePath: bundle },
    }),
    await Worker.create({
      connection,
      namespace,
      taskQueue: BARE_ACTIVITY_QUEUE,
      activities: bareActivities,
    }),
  ];
  const running = Promise.all(workers.map((w) => w.run()));
  process.stdout.write('ready\n');
  await running;
  await connection.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`bare worker failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
