/**
 * The rooms' import rules (eslint.config.mjs) catch a violation at any depth:
 * each case lints a file that is not in the tree, as if it stood at the given
 * path, through the project's own ESLint configuration.
 */
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { REPO_ROOT } from '../../stack/config';

interface LintMessage {
  ruleId: string | null;
  message: string;
}

function lint(file: string, code: string): LintMessage[] {
  let out: string;
  try {
    out = execFileSync(
      process.execPath,
      [
        path.join(REPO_ROOT, 'node_modules', 'eslint', 'bin', 'eslint.js'),
        '--stdin',
        '--stdin-filename',
        file,
        '--format',
        'json',
      ],
      { cwd: REPO_ROOT, input: code, encoding: 'utf8' },
    );
  } catch (err) {
    // ESLint exits 1 when it reports errors; the report is on stdout all the same.
    out = (err as { stdout: string }).stdout;
  }
  const [report] = JSON.parse(out) as { messages: LintMessage[] }[];
  return report!.messages;
}

const layering = (messages: LintMessage[]) =>
  messages.filter((m) => m.ruleId === 'boundaries/dependencies' || m.ruleId === 'no-restricted-imports');

describe('the rooms’ import rules', () => {
  test.each([
    [
      'the ground floor, deep down, importing an activity',
      'core/schemas/deep/x.ts',
      "import { createRayTaskActivities } from '../../../activities/ray/task-step';\nexport const x = createRayTaskActivities;\n",
    ],
    [
      'the ground floor importing the stack',
      'core/x.ts',
      "import { REPO_ROOT } from '../stack/config';\nexport const x = REPO_ROOT;\n",
    ],
    [
      'a workflow importing an activity’s code (not its type)',
      'workflows/pipeline/deep/x.ts',
      "import { createRayTaskActivities } from '../../../activities/ray/task-step';\nexport const x = createRayTaskActivities;\n",
    ],
    [
      'a workflow importing a worker',
      'workflows/x.ts',
      "import { loadWorkerConfig } from '../workers/config';\nexport const x = loadWorkerConfig;\n",
    ],
    [
      'a workflow using Node APIs',
      'workflows/x.ts',
      "import * as fs from 'node:fs';\nexport const x = fs.readFileSync;\n",
    ],
    ['an agent using I/O', 'agents/examples/x.ts', "import pino from 'pino';\nexport const x = pino;\n"],
    [
      'an activity importing a workflow',
      'activities/ray/x.ts',
      "import { pipelineWorkflow } from '../../workflows/pipeline/pipeline';\nexport const x = pipelineWorkflow;\n",
    ],
    [
      'production code importing scripts/',
      'workers/x.ts',
      "import '../scripts/stack';\nexport const x = 1;\n",
    ],
    [
      'the stack importing an activity',
      'stack/x.ts',
      "import { createRayTaskActivities } from '../activities/ray/task-step';\nexport const x = createRayTaskActivities;\n",
    ],
  ])('refuse %s', (_label, file, code) => {
    expect(layering(lint(file, code))).not.toEqual([]);
  });

  test.each([
    [
      'a workflow importing an activity’s type',
      'workflows/pipeline/deep/x.ts',
      "import type { RayTaskActivities } from '../../../activities';\nexport type X = RayTaskActivities;\n",
    ],
    [
      'an activity importing the ground floor and the stack',
      'activities/ray/x.ts',
      "import { stepActivityId } from '../../core/messages/pipeline';\nimport { REPO_ROOT } from '../../stack/config';\nexport const x = [stepActivityId, REPO_ROOT];\n",
    ],
    [
      'an agent importing the pipeline helpers',
      'agents/examples/x.ts',
      "import { definePipeline } from '../../workflows';\nexport const x = definePipeline;\n",
    ],
  ])('allow %s', (_label, file, code) => {
    expect(layering(lint(file, code))).toEqual([]);
  });
});
