/**
 * The memory server's embedded engine (stack/qdrant-local/qdrant_local_engine.py) on a real
 * qdrant-edge shard in a temporary folder, no server started: float16 collections, a shard
 * reopened once it grew, a restart loading the stored config, vector files left to the searches;
 * and its knowledge graphs (LightRAG with e5) without pypinyin loaded. The tests are Python's
 * unittest, test/python/test_qdrant_local_engine.py and test/python/test_graph_memory.py.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { VENV_PYTHON } from '../helpers/qdrant-server';

const REPO_ROOT = path.resolve(__dirname, '..', '..');

describe('memory server engine (python)', () => {
  it('passes', () => {
    const result = spawnSync(
      VENV_PYTHON,
      ['-m', 'unittest', '-v', 'test_qdrant_local_engine', 'test_graph_memory'],
      {
        cwd: path.join(REPO_ROOT, 'test', 'python'),
        env: {
          PATH: process.env.PATH ?? '/usr/bin:/bin',
          PYTHONPATH: path.join(REPO_ROOT, 'stack', 'qdrant-local'),
          PYTHONDONTWRITEBYTECODE: '1',
        },
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
    const output = `${result.stdout}${result.stderr}`;
    // The output is the report: on failure jest prints it with the status.
    expect({ status: result.status, output }).toEqual({ status: 0, output: expect.stringMatching(/\nOK\b/) });
  });
});
