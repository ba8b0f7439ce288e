import type { Logger } from 'pino';

/**
 * Runs `sweep` every `intervalMs`, never two at once (a slow sweep skips the ticks it overlaps), until
 * the returned stop function is called. A failed sweep is logged and tried again at the next tick.
 * The timer does not keep the process alive.
 */
export function runPeriodically(
  what: string,
  intervalMs: number,
  sweep: () => Promise<unknown>,
  logger: Logger,
): () => void {
  let sweeping = false;
  const timer = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    sweep()
      .catch((err: unknown) => logger.warn({ err }, `${what} failed; it runs again later`))
      .finally(() => {
        sweeping = false;
      });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}
