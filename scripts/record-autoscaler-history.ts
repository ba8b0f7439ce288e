/**
 * Records the autoscaler's history for the replay tests: a few real ticks
 * (observe → decide → apply) on the local stack, a pause and a resume, then a
 * stop signal. Run beside a stack: `npx tsx scripts/record-autoscaler-history.ts`.
 * Re-record only when the workflow changes on purpose (see record-histories.ts).
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { REPO_ROOT } from '../stack/config';
import { pauseSignal, resumeSignal, statusQuery, stopSignal } from '../core/messages/autoscaler';
import { PIPELINE_TASK_QUEUE } from '../core/task-queues';
import { startTestEnv, uniqueId, waitUntil } from '../test/helpers/test-env';

async function main(): Promise<void> {
  const env = await startTestEnv();
  try {
    const handle = await env.client.workflow.start('autoscaler', {
      taskQueue: PIPELINE_TASK_QUEUE,
      workflowId: uniqueId('autoscaler-replay'),
      args: [{ tickIntervalMs: 1000 }],
    });
    await waitUntil('two ticks', async () =>
      (await handle.query(statusQuery)).ticks >= 2 ? true : undefined,
    );
    await handle.signal(pauseSignal);
    await handle.signal(resumeSignal);
    const ticks = (await handle.query(statusQuery)).ticks;
    await waitUntil('a tick after resume', async () =>
      (await handle.query(statusQuery)).ticks > ticks ? true : undefined,
    );
    await handle.signal(stopSignal, { reason: 'recorded for replay' });
    await handle.result();
    const json = execFileSync(
      path.join(REPO_ROOT, '.venv', 'bin', 'temporal'),
      [
        'workflow',
        'show',
        '--workflow-id',
        handle.workflowId,
        '--address',
        env.config.temporal.address,
        '--output',
        'json',
      ],
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
    );
    fs.writeFileSync(path.join(REPO_ROOT, 'test', 'replay', 'histories', 'autoscaler.json'), json);
    process.stderr.write('[record] autoscaler history written\n');
  } finally {
    await env.close();
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
