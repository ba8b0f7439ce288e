/**
 * Integration tests run against the real local stack. If it is already up
 * (`npm run stack:up`), it is reused and left running; otherwise it is started
 * here and stopped by the global teardown. The workflow bundle is built once
 * for every test file.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildWorkflowBundle } from '../../stack/workflow-bundle';
import { endRunningAutoscalers } from '../../stack/autoscalers';
import { loadStackConfig, localRayClientEnv } from '../../stack/config';
import { stackDown, stackIsUp, stackUp } from '../../stack/local-stack';
import { Client, Connection } from '@temporalio/client';
import { TEST_LOG_DIR_ENV } from './test-log';

/** Tests start their own autoscalers; every other one is ended first (see stack/autoscalers.ts). */
async function endLeftoverAutoscalers(address: string): Promise<void> {
  const connection = await Connection.connect({ address });
  try {
    await endRunningAutoscalers(new Client({ connection }), 'a test run is starting on this stack');
  } finally {
    await connection.close();
  }
}

export const STARTED_MARKER = 'started-by-tests';

/**
 * A variable set only in the launcher's environment (this process starts the stack): the job-mode
 * test checks that no process the stack started, and so no Ray job, sees it.
 */
export const LAUNCHER_ONLY_PROBE = 'PANTHEON_LAUNCHER_ONLY_PROBE';

export default async function globalSetup(): Promise<void> {
  process.env[LAUNCHER_ONLY_PROBE] ??= 'set-only-in-the-launcher';
  const config = loadStackConfig();
  fs.mkdirSync(config.stateDir, { recursive: true });
  const marker = path.join(config.stateDir, STARTED_MARKER);
  if (!stackIsUp(config)) fs.writeFileSync(marker, String(process.pid));
  const started = Date.now();
  let bundlePath: string;
  try {
    [, bundlePath] = await Promise.all([
      stackUp(config),
      buildWorkflowBundle(path.join(config.stateDir, 'workflow-bundle.js')),
    ]);
  } catch (err) {
    // Jest runs no teardown after a failed setup: stop here what this run started.
    if (fs.existsSync(marker)) {
      await stackDown(config);
      fs.rmSync(marker, { force: true });
    }
    throw err;
  }
  await endLeftoverAutoscalers(config.temporal.address);
  process.env.PANTHEON_WORKFLOW_BUNDLE = bundlePath;
  // Test workers and clients talk to this stack, whatever ports it was given.
  process.env.TEMPORAL_ADDRESS = config.temporal.address;
  process.env.RAY_ADDRESS = config.ray.address;
  process.env.RAY_DASHBOARD_URL = config.ray.dashboardUrl;
  process.env.QDRANT_URL = config.qdrant.url;
  Object.assign(process.env, localRayClientEnv(config));
  // Workers' logs go to a file per test file (test/helpers/test-log.ts); a fresh run starts them empty.
  const testLogs = path.join(config.logDir, 'tests');
  fs.rmSync(testLogs, { recursive: true, force: true });
  process.env[TEST_LOG_DIR_ENV] = testLogs;
  process.stderr.write(`\n[test] stack ready in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}
