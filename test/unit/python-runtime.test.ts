/**
 * The Ray side's pure Python rules, run by jest so that `npm test` covers them: the per-function
 * task fence (task_refs.py), strict JSON (strict_json.py), the dispatcher's table (step_store.py:
 * same work only, retention while the workflow is open, with a clock the test moves by hours; the
 * output byte budget), the blob store, map items (map_runner.py) and the admission ledger
 * (admission.py). The tests themselves are Python's unittest, in test/python/.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { VENV_PYTHON } from '../helpers/qdrant-server';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const PYTHON_TESTS = path.join(REPO_ROOT, 'test', 'python');

function runUnittest(module: string): { status: number | null; output: string } {
  const result = spawnSync(VENV_PYTHON, ['-m', 'unittest', '-v', module], {
    cwd: PYTHON_TESTS,
    // An explicit environment: the code under test reads its allowlist from the environment.
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      PYTHONPATH: [path.join(REPO_ROOT, 'ray-tasks'), path.join(PYTHON_TESTS, 'fixtures')].join(':'),
      PYTHONDONTWRITEBYTECODE: '1',
      RAY_USAGE_STATS_ENABLED: '0',
    },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe.each([
  'test_task_refs',
  'test_strict_json',
  'test_step_store',
  'test_blob_store',
  'test_map_runner',
  'test_admission',
])('python %s', (module) => {
  it('passes', () => {
    const { status, output } = runUnittest(module);
    // The output is the report: on failure jest prints it with the status.
    expect({ status, output }).toEqual({ status: 0, output: expect.stringMatching(/\nOK\b/) });
  });
});
