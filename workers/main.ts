/**
 * `npm run worker`: one worker in the foreground until SIGTERM or SIGINT
 * (Temporal's runtime turns those into a graceful shutdown: running steps
 * finish or are handed back, then the bridge and the connection close).
 */
import { loadWorkerConfig } from './config';
import { createLogger } from './logger';
import { createPantheonWorker } from './pantheon-worker';

async function main(): Promise<void> {
  const config = loadWorkerConfig();
  const logger = createLogger(config.logLevel);
  const worker = await createPantheonWorker(config, logger, {
    workflowBundlePath: process.env.PANTHEON_WORKFLOW_BUNDLE,
  });
  logger.info({ temporal: config.temporal.address, ray: config.ray.address }, 'worker running');
  await worker.run();
  logger.info('worker stopped');
}

main().catch((err: unknown) => {
  process.stderr.write(`worker failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
