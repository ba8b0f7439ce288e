/**
 * `npm run soak`: the worker-kill drill of test/integration/worker-kill.test.ts,
 * for many more rounds (PANTHEON_SOAK_ROUNDS, default 100). Each round kills
 * the worker process with SIGKILL while its step's Ray task sleeps, starts a
 * new one, and checks that the step's side effect happened exactly once.
 * Uses the local stack of the current environment (started if needed, like
 * the tests do); exits 1 if any round ran the side effect other than once.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { z } from 'zod';
import globalSetup from '../test/helpers/global-setup';
import { recordFigures } from '../test/helpers/figures';
import { startTestEnv } from '../test/helpers/test-env';
import { workerKillRound } from '../test/helpers/worker-kill-round';
import { describeZodError } from '../core/issues';

const settings = z
  .object({
    PANTHEON_SOAK_ROUNDS: z.coerce.number().int().min(1).default(100),
    PANTHEON_SOAK_DELAY_SECONDS: z.coerce.number().min(1).default(4),
  })
  .safeParse(process.env);

async function main(): Promise<number> {
  if (!settings.success) {
    throw new Error(`invalid ${describeZodError(settings.error)}`);
  }
  const { PANTHEON_SOAK_ROUNDS: rounds, PANTHEON_SOAK_DELAY_SECONDS: delay } = settings.data;
  await globalSetup();
  const env = await startTestEnv({ worker: false });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-soak-'));
  let duplicates = 0;
  let missing = 0;
  const recovery: number[] = [];
  try {
    let worker = await env.startWorkerProcess();
    for (let i = 1; i <= rounds; i++) {
      const round = await workerKillRound(env, worker, dir, delay);
      worker = round.survivor;
      if (round.lines > 1) duplicates++;
      if (round.lines < 1) missing++;
      recovery.push(round.recoveryMs);
      process.stderr.write(
        `round ${i}/${rounds}: lines=${round.lines} attempts=${round.attempts} rayTasks=${round.rayTasks} recovery=${round.recoveryMs} ms\n`,
      );
    }
  } finally {
    await env.close();
  }
  recovery.sort((a, b) => a - b);
  recordFigures('worker-kill-soak', {
    rounds: recovery.length,
    duplicates,
    missing,
    recoveryMsMedian: recovery[Math.floor(recovery.length / 2)],
    recoveryMsMax: recovery[recovery.length - 1],
  });
  return duplicates + missing === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`soak failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  },
);
