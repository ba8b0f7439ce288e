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
import { minioClientEnv, newMinioSettings, type MinioSettings } from '../../stack/minio';

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

/**
 * Where the S3 blob store test's MinIO will listen and its credentials (test/integration/blob-s3.test.ts):
 * made before the stack starts, because the Ray nodes take the credentials of an S3-compatible store
 * from their own environment (stack/config.ts, S3_CLIENT_ENV_KEYS), which is fixed when they start.
 */
export const TEST_S3_SETTINGS_FILE = 'test-s3.json';

export default async function globalSetup(): Promise<void> {
  process.env[LAUNCHER_ONLY_PROBE] ??= 'set-only-in-the-launcher';
  const config = loadStackConfig();
  fs.mkdirSync(config.stateDir, { recursive: true });
  const marker = path.join(config.stateDir, STARTED_MARKER);
  const s3SettingsFile = path.join(config.stateDir, TEST_S3_SETTINGS_FILE);
  if (!stackIsUp(config)) {
    fs.writeFileSync(marker, String(process.pid));
    fs.writeFileSync(s3SettingsFile, JSON.stringify(await newMinioSettings()));
  }
  // A stack these tests started (now, or in an earlier run left up) gives its nodes these S3 credentials.
  if (fs.existsSync(s3SettingsFile)) {
    const s3 = minioClientEnv(JSON.parse(fs.readFileSync(s3SettingsFile, 'utf8')) as MinioSettings);
    Object.assign(process.env, {
      PANTHEON_S3_ENDPOINT: s3.AWS_ENDPOINT_URL_S3,
      PANTHEON_S3_ACCESS_KEY_ID: s3.AWS_ACCESS_KEY_ID,
      PANTHEON_S3_SECRET_ACCESS_KEY: s3.AWS_SECRET_ACCESS_KEY,
      PANTHEON_S3_REGION: s3.AWS_REGION,
    });
  }
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
