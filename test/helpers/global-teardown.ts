/** Stops the stack if the global setup started it. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadStackConfig } from '../../stack/config';
import { stackDown } from '../../stack/local-stack';
import { STARTED_MARKER, TEST_S3_SETTINGS_FILE } from './global-setup';

export default async function globalTeardown(): Promise<void> {
  const config = loadStackConfig();
  const marker = path.join(config.stateDir, STARTED_MARKER);
  if (!fs.existsSync(marker)) return;
  await stackDown(config);
  fs.rmSync(marker, { force: true });
  fs.rmSync(path.join(config.stateDir, TEST_S3_SETTINGS_FILE), { force: true });
}
