/**
 * The worker and the Ray side enforce the task rule independently, each from
 * its own allowlist (core/schemas/task-ref.ts, ray-tasks/pantheon_runtime/task_refs.py).
 * Their forms and defaults must agree: here both judge the same references,
 * generated at random and mutated toward the tricky cases.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import fc from 'fast-check';
import { AGENT_HOST_TASK } from '../../core/agent-host';
import { DEFAULT_ALLOWED_TASK_MODULES, refuseTaskRef } from '../../core/schemas/task-ref';
import { VENV_PYTHON } from '../helpers/qdrant-server';

const RAY_TASKS = path.resolve(__dirname, '..', '..', 'ray-tasks');
const SEED = Number(process.env.FC_SEED ?? Date.now() % 1_000_000);

/** The Ray side's syntactic verdict (no import) on each reference: null when allowed, else its message. */
function pythonVerdicts(
  refs: string[],
  allowlist: string[],
): { defaults: string[]; agentHost: string; verdicts: (string | null)[] } {
  const script = `
import json, sys
from pantheon_runtime.task_refs import AGENT_HOST_TASK, DEFAULT_ALLOWLIST, TaskRefRefused, check_task_ref
request = json.load(sys.stdin)
verdicts = []
for ref in request["refs"]:
    try:
        check_task_ref(ref, request["allowlist"])
        verdicts.append(None)
    except TaskRefRefused as err:
        verdicts.append(str(err))
print(json.dumps({"defaults": list(DEFAULT_ALLOWLIST), "agentHost": AGENT_HOST_TASK, "verdicts": verdicts}))
`;
  const result = spawnSync(VENV_PYTHON, ['-c', script], {
    input: JSON.stringify({ refs, allowlist }),
    encoding: 'utf8',
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PYTHONPATH: RAY_TASKS },
  });
  if (result.status !== 0) throw new Error(result.stderr);
  return JSON.parse(result.stdout) as { defaults: string[]; agentHost: string; verdicts: (string | null)[] };
}

const segment = fc.oneof(
  fc.constantFrom(
    'pantheon_tasks',
    'testkit',
    'examples',
    'os',
    'echo',
    '__setattr__',
    '_private',
    '__init__',
    'a1',
    'x_y',
  ),
  fc.stringMatching(/^[A-Za-z_][A-Za-z0-9_]{0,6}$/),
);
const ref = fc.oneof(
  fc.tuple(fc.array(segment, { minLength: 1, maxLength: 3 }), segment).map(([m, f]) => `${m.join('.')}:${f}`),
  fc.string({ maxLength: 20, unit: 'grapheme' }),
  fc.constantFrom(
    'pantheon_tasks.testkit:echo',
    'os:system',
    'pantheon_tasks.testkit:__delattr__',
    AGENT_HOST_TASK,
  ),
);

test(`both sides judge references alike (seed ${SEED})`, () => {
  const allowlist = ['pantheon_tasks.testkit', 'pantheon_tasks.examples', 'os'];
  const refs = fc.sample(ref, { numRuns: 400, seed: SEED });
  const python = pythonVerdicts(refs, allowlist);
  expect(python.defaults).toEqual(DEFAULT_ALLOWED_TASK_MODULES);
  expect(python.agentHost).toBe(AGENT_HOST_TASK);
  const disagreements = refs
    .map((r, i) => ({ ref: r, node: refuseTaskRef(r, allowlist) ?? null, ray: python.verdicts[i] ?? null }))
    .filter((v) => (v.node === null) !== (v.ray === null));
  expect(disagreements).toEqual([]);
});
