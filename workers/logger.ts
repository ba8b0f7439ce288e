/** Structured JSON logs (pino); children carry workflowId and stepId. */
import { DefaultLogger, Runtime, type LogLevel } from '@temporalio/worker';
import pino, { type Logger } from 'pino';

/** Logs to stdout, or appended to `file` when given (tests keep their terminal for jest's reporter). */
export function createLogger(level: string, name = 'pantheon', file?: string): Logger {
  const options = { name, level, base: { pid: process.pid } };
  return file === undefined
    ? pino(options)
    : pino(options, pino.destination({ dest: file, mkdir: true, sync: true }));
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
 * Routes the Temporal SDK's own logs (worker state, workflow task failures),
 * its native core's included, through pino at the same level. The SDK runtime can be installed once per
 * process, before the first worker; later calls are no-ops.
 */
export function installSdkLogging(logger: Logger): void {
  if (sdkLoggingInstalled) return;
  sdkLoggingInstalled = true;
  const sdkLogger = logger.child({ component: 'temporal-sdk' });
  const level = SDK_LEVELS[logger.level] ?? 'INFO';
  Runtime.install({
    logger: new DefaultLogger(level, (entry) => {
      const entryLevel = entry.level.toLowerCase() as 'trace' | 'debug' | 'info' | 'warn' | 'error';
      sdkLogger[entryLevel]({ ...entry.meta }, entry.message);
    }),
    // The SDK's native core logs to the console by itself; forwarded, its lines go where ours go.
    telemetryOptions: { logging: { filter: { core: level, other: 'ERROR' }, forward: {} } },
  });
}
