/**
 * Replays recorded histories (scripts/record-histories.ts, real runs) against
 * today's workflow code. A change that would make a running workflow take a
 * different path on replay fails here, before it reaches a deployment.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { bundleWorkflowCode, Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { agentCatalog, codePipelines } from '../../agents';
import { pantheonWorkflows } from '../../workflows';
import { historyFromCliJson } from './load-history';

const HISTORIES = path.join(__dirname, 'histories');
const files = fs
  .readdirSync(HISTORIES)
  .filter((f) => f.endsWith('.json'))
  .sort();

interface RecordedHistory {
  file: string;
  workflowType: string;
  history: ReturnType<typeof historyFromCliJson>;
}

function load(file: string): RecordedHistory {
  const history = historyFromCliJson(JSON.parse(fs.readFileSync(path.join(HISTORIES, file), 'utf8')));
  const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
  return { file, workflowType: started?.workflowType?.name ?? '', history };
}

const noop = () => undefined;
const quiet = { trace: noop, debug: noop, info: noop, warn: noop, error: console.error, log: noop };

let bundle: WorkflowBundleWithSourceMap;
beforeAll(async () => {
  bundle = await bundleWorkflowCode({
    workflowsPath: require.resolve('../../agents/workflows'),
    logger: quiet,
  });
}, 120_000);

describe('recorded histories replay against today’s workflow code', () => {
  const recorded = files.map(load);

  test('every shipped workflow has a recorded history', () => {
    const shipped = [
      ...pantheonWorkflows({ agents: agentCatalog, pipelines: codePipelines }).workflowTypes,
    ].sort();
    const covered = new Set(recorded.map((r) => r.workflowType));
    expect(shipped.filter((name) => !covered.has(name))).toEqual([]);
  });

  test.each(files)('%s', async (file) => {
    const { history } = recorded.find((r) => r.file === file)!;
    const results = Worker.runReplayHistories({ workflowBundle: bundle, replayName: file }, [
      { workflowId: file, history },
    ]);
    for await (const result of results) expect(result.error).toBeUndefined();
  });
});
