/**
 * `npm run stack:up|down|status`: the local Temporal + Ray + Qdrant stack
 * (stack/local-stack.ts does the work).
 */
import { Command } from 'commander';
import { loadStackConfig } from '../stack/config';
import { stackDown, stackStatus, stackUp } from '../stack/local-stack';

const log = (msg: string) => process.stderr.write(`[stack] ${msg}\n`);

const program = new Command('stack').description('the local Temporal + Ray + Qdrant stack');
program.command('up').action(async () => {
  const config = loadStackConfig();
  await stackUp(config);
  log(`Temporal ${config.temporal.address}, Web UI http://127.0.0.1:${config.temporal.uiPort}`);
  log(`Ray ${config.ray.address}, dashboard ${config.ray.dashboardUrl}; Qdrant ${config.qdrant.url}`);
});
program.command('down').action(() => stackDown());
program.command('status').action(() => stackStatus(loadStackConfig()).forEach(log));
program.parseAsync().catch((err: unknown) => {
  log(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
