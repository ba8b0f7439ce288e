/**
 * Where a test file's worker logs go: one file per test file under the state
 * folder's logs (the global setup sets PANTHEON_TEST_LOG_DIR), so the terminal
 * shows jest's progress and failures rather than the workers' JSON lines; the
 * summary reporter names the file of each test file that failed. Outside the
 * integration project's global setup, logs go to stdout as before.
 */
import * as path from 'node:path';
import type { Logger } from 'pino';
import { createLogger } from '../../workers/logger';

export const TEST_LOG_DIR_ENV = 'PANTHEON_TEST_LOG_DIR';

/** The log file of the test file that is running (same name plus `.log`), if tests log to files. */
export function testLogFile(): string | undefined {
  const dir = process.env[TEST_LOG_DIR_ENV];
  // Scripts (scripts/record-histories.ts) use the test environment outside jest.
  const testPath = typeof expect === 'undefined' ? undefined : expect.getState().testPath;
  if (!dir || !testPath) return undefined;
  return path.join(dir, `${path.basename(testPath)}.log`);
}

export function createTestLogger(level: string, name: string): Logger {
  return createLogger(level, name, testLogFile());
}
