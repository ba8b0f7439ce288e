/**
 * kill -9 of the Node worker while its step's Ray task sleeps, then a new
 * worker: the retried activity attaches to the task the dispatcher still owns,
 * the pipeline completes, and the side effect happened exactly once. Repeated
 * (PANTHEON_KILL_ROUNDS, default 10); `npm run soak` runs many more.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { recordFigures } from '../helpers/figures';
import { startTestEnv, type TestEnv } from '../helpers/test-env';
import { workerKillRound, type KillRound } from '../helpers/worker-kill-round';
import type { WorkerProcess } from '../helpers/worker-process';

const ROUNDS = Number(process.env.PANTHEON_KILL_ROUNDS ?? 10);

let env: TestEnv;
let worker: WorkerProcess;
beforeAll(async () => {
  // No in-process worker: only the killable worker process may take the step.
  env = await startTestEnv({ worker: false });
  worker = await env.startWorkerProcess();
}, 180_000);
afterAll(async () => {
  await env?.close();
});

test(
  `${ROUNDS} rounds of kill -9 mid-step: every pipeline completes, every side effect happens once`,
  async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-kill-'));
    const rounds: Omit<KillRound, 'survivor'>[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const { survivor, ...round } = await workerKillRound(env, worker, dir);
      worker = survivor;
      rounds.push(round);
    }
    const duplicates = rounds.filter((r) => r.lines !== 1).length;
    const recovery = rounds.map((r) => r.recoveryMs).sort((a, b) => a - b);
    recordFigures('worker-kill', {
      rounds: rounds.length,
      duplicates,
      rayTasksPerStep: [...new Set(rounds.map((r) => r.rayTasks))],
      attempts: rounds.map((r) => r.attempts),
      recoveryMsMedian: recovery[Math.floor(recovery.length / 2)],
      recoveryMsMax: recovery[recovery.length - 1],
    });
    for (const round of rounds) {
      expect(round.lines).toBe(1);
      // The kill really cost the attempt: a later attempt attached to the same Ray task.
      expect(round.attempts).toBeGreaterThanOrEqual(2);
      expect(round.rayTasks).toBe(1);
    }
  },
  ROUNDS * 90_000 + 60_000,
);
