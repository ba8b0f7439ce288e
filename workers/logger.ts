/** Structured JSON logs (pino); children carry workflowId and stepId. */
import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import pino, { type Logger } from 'pino';

export function createLogger(level: string, name = 'pantheon'): Logger {
  return pino({ name, level, base: { pid: process.pid } });
}

const SDK_LEVELS: Record<string, LogLevel> = {
  trace: 'TRACE',
  debug: 'DEBUG',
  info: 'INFO',
  warn: 'WARN',
  error: 'ERROR',
  fatal: 'ERROR',
  silent: 'ERROR',
};

let sdkLoggingInstalled = false;

/**
 * Routes the Temporal SDK's own logs (worker state, workflow task failures)
 * through pino at the same level. The SDK runtime can be installed once per
 * process, before the first worker; later calls are no-ops.
 */
export function installSdkLogging(logger: Logger): void {
  if (sdkLoggingInstalled) return;
  sdkLoggingInstalled = true;
  const sdkLogger = logger.child({ component: 'temporal-sdk' });
  Runtime.install({
    logger: new DefaultLogger(SDK_LEVELS[logger.level] ?? 'INFO', (entry) => {
      const level = entry.level.toLowerCase() as 'trace' | 'debug' | 'info' | 'warn' | 'error';
      sdkLogger[level]({ ...entry.meta }, entry.message);
    }),
  });
}
