/**
 * The `pantheon` CLI as a user runs it (a child process through its bin entry),
 * against the real stack, with this test's in-process worker doing the work.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { runPantheon, type CliRun } from '../helpers/pantheon-cli';
import { startTestEnv, uniqueId, waitUntil, type TestEnv } from '../helpers/test-env';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

function pantheon(args: string[]): Promise<CliRun> {
  return runPantheon(args, { TEMPORAL_ADDRESS: env.config.temporal.address });
}

function writeSpec(spec: unknown): string {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-cli-')), 'spec.json');
  fs.writeFileSync(file, JSON.stringify(spec));
  return file;
}

describe('pantheon CLI', () => {
  test('run <spec.json> shows a progress bar per step, then the steps and the usage report', async () => {
    const project = uniqueId('cli');
    const id = uniqueId('cli-run');
    const spec = writeSpec({
      name: 'cli-spec',
      project: 'overridden',
      steps: [
        { id: 'first', task: 'pantheon_tasks.testkit:sleep', args: [2, 'one'] },
        {
          id: 'second',
          agent: 'writer',
          args: ['CLI', { lensesByWeight: [], analyses: {}, notes: [] }],
          dependsOn: ['first'],
        },
      ],
    });
    const result = await pantheon(['run', spec, '--project', project, '--priority', '2', '--id', id]);
    expect(result.stderr).toContain(`started cli-spec as ${id} (project ${project}, priority 2)`);
    // cli-progress bars (non-TTY mode prints them as lines), one per step.
    expect(result.stderr).toMatch(/ first +[█░]+ +\d+% (queued|running|succeeded)/);
    expect(result.stderr).toMatch(/ second +[█░]+ +\d+% /);
    expect(result.stdout).toContain(`cli-spec (${id}) · project ${project} · priority 2 · succeeded`);
    expect(result.stdout).toMatch(/first +— +succeeded +1 /);
    expect(result.stdout).toMatch(/second +writer +succeeded +1 /);
    expect(result.stdout).toMatch(/TOTAL +\d+\.\d\d/);
    expect(result.code).toBe(0);

    const status = await pantheon(['status', id]);
    expect(status.code).toBe(0);
    expect(status.stdout).toContain(`summary: pipeline cli-spec for ${project}: 2 steps, priority 2`);
    expect(status.stdout).toMatch(/second +writer +succeeded/);

    const listed = await waitUntil('the pipeline in `pantheon list`', async () => {
      const list = await pantheon(['list', '--project', project]);
      return list.stdout.includes(id) ? list : undefined;
    });
    expect(listed.stdout).toMatch(new RegExp(`${id} +cli-spec +${project} +succeeded`));
  });

  test('run <pipeline> starts a code-defined pipeline with its input', async () => {
    const project = uniqueId('cli');
    const result = await pantheon([
      'run',
      'ticket-triage',
      '--project',
      project,
      '--input',
      JSON.stringify({ tickets: ['cannot login', 'billing page shows an outage'] }),
      '--json',
    ]);
    expect(result.code).toBe(0);
    const final = JSON.parse(result.stdout) as { status: string; output: { total: number } };
    expect(final).toMatchObject({ status: 'succeeded', output: { total: 2 } });
  });

  test("the README's research-report finds something in every section for a paraphrased topic", async () => {
    // Exactly the README's command: no source says "grid-scale batteries"; the
    // agents find the battery-storage sources by meaning (e5 embeddings).
    const result = await pantheon([
      'run',
      'research-report',
      '--project',
      uniqueId('cli-readme'),
      '--priority',
      '2',
      '--input',
      '{"topic": "grid-scale batteries"}',
      '--json',
    ]);
    expect(result.code).toBe(0);
    const final = JSON.parse(result.stdout) as { status: string; output: { markdown: string } };
    expect(final.status).toBe('succeeded');
    const { markdown } = final.output;
    expect(markdown).not.toMatch(/no findings/);
    for (const section of ['Market', 'Risk', 'Technology']) {
      // Each section's heading is followed by at least one finding line.
      expect(markdown).toMatch(new RegExp(`## ${section} \\(score \\d+\\)\\n- \\S`));
    }
  });

  test('a failing pipeline exits 1; invalid input exits 2 naming the field, and starts nothing', async () => {
    const failing = writeSpec({
      name: 'cli-fail',
      project: uniqueId('cli'),
      steps: [
        {
          id: 'boom',
          task: 'pantheon_tasks.examples:analyze',
          args: [[], 'astrology'],
          retry: { maximumAttempts: 1 },
        },
      ],
    });
    const failed = await pantheon(['run', failing]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/boom +— +failed/);
    expect(failed.stdout).toMatch(/ValueError: unknown lens 'astrology'/);

    const invalid = await pantheon([
      'run',
      writeSpec({ name: 'x', project: 'p', steps: [{ id: 'a', task: 'nope' }] }),
    ]);
    expect(invalid.code).toBe(2);
    expect(invalid.stderr).toMatch(/invalid pipeline spec .*: steps\[0\]\.task: a task reference/);

    const badInput = await pantheon(['run', 'research-report', '--project', 'p', '--input', '{"topic": 3}']);
    expect(badInput.code).toBe(2);
    expect(badInput.stderr).toMatch(/invalid input for research-report: input\.topic: /);

    const badPriority = await pantheon(['run', 'research-report', '--project', 'p', '--priority', '9']);
    expect(badPriority.code).not.toBe(0);
    expect(badPriority.stderr).toMatch(/--priority.*an integer from 1 \(most urgent\) to 5/);
  });
});
