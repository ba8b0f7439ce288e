/**
 * `npm run worker`: one worker in the foreground until SIGTERM or SIGINT
 * (Temporal's runtime turns those into a graceful shutdown: running steps
 * finish or are handed back, then the bridge and the connection close).
 *
 * The workflow bundle is built in a child process (or taken from
 * PANTHEON_WORKFLOW_BUNDLE), so webpack never lives in the worker's heap.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { loadWorkerConfig } from './config';
import { createLogger } from './logger';
import { createPantheonWorker } from './pantheon-worker';

function prebuiltBundle(): string {
  if (process.env.PANTHEON_WORKFLOW_BUNDLE) return process.env.PANTHEON_WORKFLOW_BUNDLE;
  const script = path.join(__dirname, '..', 'stack', 'workflow-bundle.ts');
  const out = path.join(__dirname, '..', '.state', 'workflow-bundle.worker.js');
  execFileSync(process.execPath, [require.resolve('tsx/cli'), script, out], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return out;
}

async function main(): Promise<void> {
  const config = loadWorkerConfig();
  const logger = createLogger(config.logLevel);
  const worker = await createPantheonWorker(config, logger, { workflowBundlePath: prebuiltBundle() });
  logger.info({ temporal: config.temporal.address, ray: config.ray.address }, 'worker running');
  await worker.run();
  logger.info('worker stopped');
}

main().catch((err: unknown) => {
  process.stderr.write(`worker failed: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
