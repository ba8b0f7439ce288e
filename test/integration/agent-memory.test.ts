/**
 * Agent memory in the agent lifecycle, on the real stack: an agent step is
 * given what its agent and its project remember before it runs (`memories`,
 * recalled by the workflow, and a scoped `memory` handle read from Python
 * while it runs), and what it returns under `memories` is kept for later
 * pipelines. Isolation holds on every path: another agent and another project
 * see nothing of it, and so does the CLI unless asked for that agent.
 */
import type { PipelineResult } from '../../core/schemas/pipeline-spec';
import { runPantheon } from '../helpers/pantheon-cli';
import { startTestEnv, uniqueId, type TestEnv } from '../helpers/test-env';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

const SOURCES = [
  {
    id: 's1',
    title: 'Port strike',
    text: 'A strike at the port delays supply and raises the risk of outages.',
  },
  { id: 's2', title: 'Cheap panels', text: 'Panel prices fell as demand grew in rooftop markets.' },
];
const TOPIC = 'port strike supply';

/** Analyst (shared + private memory) → reviewer (shared) → writer (private, reads through its handle). */
function researchSpec(project: string, name: string) {
  return {
    name,
    project,
    steps: [
      { id: 'risk', agent: 'analyst', args: [SOURCES, 'risk'], kwargs: { think_seconds: 0 } },
      { id: 'review', agent: 'reviewer', args: [{ risk: { $step: 'risk' } }], kwargs: { think_seconds: 0 } },
      { id: 'write', agent: 'writer', args: [TOPIC, { $step: 'review' }], kwargs: { think_seconds: 0 } },
    ],
  };
}

interface AnalystOutput {
  recalled: string[];
  recalledGraph: string[];
}
interface WriterOutput {
  earlier: string[];
  markdown: string;
}

const outputOf = <T>(result: PipelineResult, step: string) => result.steps[step]!.output as T;

test('an agent recalls what it and its project kept in earlier pipelines, and nothing of others', async () => {
  const project = uniqueId('mem-project');
  const otherProject = uniqueId('mem-other');
  const analystPrivate = 'risk lens on Port strike: delays, outages, risk, supply';
  const reviewShared = 'review ranked risk for Port strike';
  const reportPrivate = `report on ${TOPIC}: risk`;

  const first = await env.runPipeline(researchSpec(project, 'memory-first'));
  expect(first.status).toBe('succeeded');
  // A new project remembers nothing yet.
  expect(outputOf<AnalystOutput>(first, 'risk').recalled).toEqual([]);
  expect(outputOf<WriterOutput>(first, 'write').earlier).toEqual([]);

  // Another pipeline of the same project: the analyst gets its own private findings and the
  // reviewer's shared ranking; the writer, reading through its handle, gets its own earlier report.
  const second = await env.runPipeline(researchSpec(project, 'memory-second'));
  expect(second.status).toBe('succeeded');
  const recalled = outputOf<AnalystOutput>(second, 'risk').recalled;
  expect(recalled).toEqual(expect.arrayContaining([analystPrivate, reviewShared]));
  // The facts it returned the first time come back from its knowledge graph, merged into `memories`.
  expect(outputOf<AnalystOutput>(first, 'risk').recalledGraph).toEqual([]);
  const graph = outputOf<AnalystOutput>(second, 'risk').recalledGraph;
  expect(graph).toHaveLength(1);
  expect(graph[0]).toContain('The risk lens found delays, outages, risk, supply in Port strike.');
  const earlier = outputOf<WriterOutput>(second, 'write').earlier;
  expect(earlier).toEqual([reportPrivate]);
  expect(outputOf<WriterOutput>(second, 'write').markdown).toContain(
    `## Earlier reports\n- ${reportPrivate}`,
  );
  // The writer keeps only private memory: neither the analyst's private findings nor shared memory reach it.
  expect(earlier).not.toContain(analystPrivate);

  // Another project sees nothing of the first, by either path.
  const other = await env.runPipeline(researchSpec(otherProject, 'memory-other'));
  expect(other.status).toBe('succeeded');
  expect(outputOf<AnalystOutput>(other, 'risk').recalled).toEqual([]);
  expect(outputOf<AnalystOutput>(other, 'risk').recalledGraph).toEqual([]);
  expect(outputOf<WriterOutput>(other, 'write').earlier).toEqual([]);

  // The CLI: shared memory of the project by default; an agent's private memory only when named.
  const cli = (args: string[]) => runPantheon(['memory', 'search', ...args]);
  const shared = await cli(['--project', project, '--json']);
  expect(shared.code).toBe(0);
  const sharedTexts = (JSON.parse(shared.stdout) as Array<{ text: string; scope: string }>).map(
    (m) => m.text,
  );
  // One shared ranking per pipeline run (each run is its own provenance), and no private memory.
  expect(sharedTexts).toEqual([reviewShared, reviewShared]);
  const analystOwn = await cli([
    '--project',
    project,
    '--scope',
    'private',
    '--agent',
    'analyst',
    '--query',
    'port strike risk',
  ]);
  expect(analystOwn.code).toBe(0);
  expect(analystOwn.stdout).toMatch(/SCORE\s+SCOPE\s+AGENT/);
  expect(analystOwn.stdout).toContain(analystPrivate.slice(0, 40));
  expect(analystOwn.stdout).not.toContain('report on');
  const noAgent = await cli(['--project', project, '--scope', 'private']);
  expect(noAgent.code).toBe(2);
  expect(noAgent.stderr).toMatch(/agent: is required to read private memory/);
  const elsewhere = await cli(['--project', uniqueId('mem-nobody'), '--query', 'port strike']);
  expect(elsewhere).toMatchObject({ code: 0, stdout: 'no memories found\n' });
});
