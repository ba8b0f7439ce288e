/**
 * `pantheon`: start and watch pipelines.
 *
 *   pantheon run <pipeline|spec.json> [--project p] [--priority 1-5] [--input JSON]
 *   pantheon status <workflowId>
 *   pantheon output <workflowId> <stepId> [--out file]
 *   pantheon blobs gc [--retention 7d] [--dry-run] [--json]
 *   pantheon list [--project p] [--pipeline name] [--status s]
 *   pantheon pipelines
 *   pantheon memory search --project p [--query text] [--scope shared private --agent a]
 *
 * Talks to the Temporal server named by TEMPORAL_ADDRESS (default
 * 127.0.0.1:7233); a worker must be running for pipelines to make progress.
 */
import * as crypto from 'node:crypto';
import { Command, InvalidArgumentError, Option } from 'commander';
import { WorkflowFailedError, type Client, type WorkflowHandle } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { progressQuery } from '../core/messages/pipeline';
import type { PipelineResult } from '../core/schemas/pipeline-spec';
import { connectClient } from './client';
import { MEMORY_SCOPES } from '../core/schemas/memory';
import { duration, header, stepsTable, table, usageTable } from './format';
import { searchMemory, type MemorySearchOptions } from './memory';
import { PipelineProgressView, withMapItems, type PendingActivity } from './progress-view';
import { printStepOutput } from './output';
import { blobsGc, blobStoreSettings, parseRetention, retentionFromEnv, type BlobsGcOptions } from './blobs';
import { listCodePipelines, planRun, UsageError, type RunOptions } from './targets';

const POLL_MS = 500;

function priorityOption(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > 5)
    throw new InvalidArgumentError('an integer from 1 (most urgent) to 5');
  return n;
}

function positiveInteger(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('a positive integer');
  return n;
}

function retentionOption(value: string): number {
  const parsed = parseRetention(value);
  if (!parsed.ok) throw new InvalidArgumentError(parsed.message);
  return parsed.ms;
}

function positiveNumber(value: string): number {
  const n = Number(value);
  if (!(n > 0)) throw new InvalidArgumentError('a positive number');
  return n;
}

async function queryProgress(handle: WorkflowHandle): Promise<PipelineResult | undefined> {
  let progress: PipelineResult;
  try {
    progress = await handle.query(progressQuery);
  } catch {
    return undefined;
  }
  // Map steps count their items in their activities' heartbeats, which describe lists.
  if (!Object.values(progress.steps).some((s) => s.status === 'running')) return progress;
  try {
    return withMapItems(progress, await pendingActivities(handle));
  } catch {
    return progress;
  }
}

async function pendingActivities(handle: WorkflowHandle): Promise<PendingActivity[]> {
  const { raw } = await handle.describe();
  return (raw.pendingActivities ?? []).map((a) => ({
    activityId: a.activityId ?? '',
    details: a.heartbeatDetails?.payloads?.length
      ? defaultPayloadConverter.fromPayload(a.heartbeatDetails.payloads[0]!)
      : undefined,
  }));
}

/** The final result: the workflow's return value, or the result carried by its failure. */
async function finalResult(handle: WorkflowHandle): Promise<{ result?: PipelineResult; error?: string }> {
  try {
    return { result: (await handle.result()) as PipelineResult };
  } catch (err) {
    if (err instanceof WorkflowFailedError) {
      const cause = err.cause as { message?: string; details?: unknown[] } | undefined;
      const carried = cause?.details?.[0] as PipelineResult | undefined;
      return { result: carried?.stepOrder ? carried : undefined, error: cause?.message ?? err.message };
    }
    throw err;
  }
}

function printResult(result: PipelineResult | undefined, workflowId: string, error?: string): void {
  if (result) {
    process.stdout.write(
      `\n${header(result, workflowId)}\n\n${stepsTable(result)}\n\nUsage\n${usageTable(result)}\n`,
    );
    if (result.output !== undefined) {
      const text = JSON.stringify(result.output, null, 2);
      process.stdout.write(`\nOutput\n${text.length > 4000 ? `${text.slice(0, 4000)}\n…` : text}\n`);
    }
  }
  if (error) process.stdout.write(`\n${error}\n`);
}

async function run(
  client: Client,
  target: string,
  options: RunOptions & { detach?: boolean; json?: boolean },
) {
  const plan = planRun(target, options);
  const workflowId = options.id ?? `${plan.name}-${crypto.randomBytes(4).toString('hex')}`;
  const handle = await client.workflow.start(plan.workflowType, {
    ...plan.options,
    workflowId,
    args: plan.args,
  });
  process.stderr.write(
    `started ${plan.name} as ${workflowId} (project ${plan.project}, priority ${plan.priority})\n`,
  );
  if (options.detach) {
    process.stdout.write(`${workflowId}\n`);
    return 0;
  }

  const view = options.json ? undefined : new PipelineProgressView();
  let finished = false;
  const ended = finalResult(handle).finally(() => (finished = true));
  while (!finished) {
    const progress = await queryProgress(handle);
    if (progress && view) view.update(progress);
    await Promise.race([ended, new Promise((resolve) => setTimeout(resolve, POLL_MS))]);
  }
  const { result, error } = await ended;
  if (result && view) view.update(result);
  view?.stop();
  if (options.json) process.stdout.write(`${JSON.stringify(result ?? { error }, null, 2)}\n`);
  else printResult(result, workflowId, error);
  return result?.status === 'succeeded' ? 0 : 1;
}

async function status(client: Client, workflowId: string) {
  const handle = client.workflow.getHandle(workflowId);
  const description = await handle.describe();
  const summary = await description.staticSummary();
  process.stdout.write(
    [
      `workflow ${workflowId} (${description.type}) · ${description.status.name}`,
      `started ${description.startTime.toISOString()}${description.closeTime ? ` · closed ${description.closeTime.toISOString()}` : ''}`,
      ...(summary ? [`summary: ${summary}`] : []),
    ].join('\n') + '\n',
  );
  const progress =
    (await queryProgress(handle)) ??
    (description.status.name === 'RUNNING' ? undefined : (await finalResult(handle)).result);
  if (!progress) {
    process.stdout.write('(no progress available: is a worker running?)\n');
    return 0;
  }
  process.stdout.write(
    `\n${header(progress, workflowId)}\n\n${stepsTable(progress)}\n\nUsage\n${usageTable(progress)}\n`,
  );
  return 0;
}

function quote(value: string): string {
  return `"${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

async function list(
  client: Client,
  options: { project?: string; pipeline?: string; status?: string; limit: number },
) {
  const clauses = ['PantheonPipeline IS NOT NULL'];
  if (options.project) clauses.push(`PantheonProject = ${quote(options.project)}`);
  if (options.pipeline) clauses.push(`PantheonPipeline = ${quote(options.pipeline)}`);
  if (options.status) clauses.push(`PantheonStatus = ${quote(options.status)}`);
  const rows: string[][] = [];
  for await (const wf of client.workflow.list({ query: clauses.join(' AND ') })) {
    const attr = (name: string) => String(wf.searchAttributes[name]?.[0] ?? '—');
    const end = wf.closeTime?.getTime() ?? Date.now();
    rows.push([
      wf.workflowId,
      attr('PantheonPipeline'),
      attr('PantheonProject'),
      attr('PantheonStatus'),
      wf.startTime.toISOString().replace('T', ' ').slice(0, 19),
      duration(end - wf.startTime.getTime()),
    ]);
    if (rows.length >= options.limit) break;
  }
  process.stdout.write(
    rows.length === 0
      ? 'no pipelines found\n'
      : `${table(['WORKFLOW ID', 'PIPELINE', 'PROJECT', 'STATUS', 'STARTED (UTC)', 'DURATION'], rows)}\n`,
  );
  return 0;
}

export function buildProgram(): Command {
  const program = new Command('pantheon')
    .description('Run and watch Pantheon pipelines (Temporal workflows whose steps run on Ray)')
    .showHelpAfterError();

  program
    .command('run')
    .description('start a pipeline and show a live progress bar per step until it ends')
    .argument(
      '<pipeline|spec.json>',
      'a code-defined pipeline name (see `pantheon pipelines`) or a JSON spec file',
    )
    .option('--project <project>', 'project (fairness key); overrides the spec')
    .option('--priority <1-5>', '1 = most urgent … 5; overrides the spec', priorityOption)
    .option('--user <user>', 'user within the project (fairness key project/user)')
    .addOption(
      new Option('--fairness-weight <weight>', 'the project’s share against others').argParser(
        positiveNumber,
      ),
    )
    .option('--input <json>', 'input of a code-defined pipeline, as JSON')
    .option('--input-file <file>', 'input of a code-defined pipeline, from a JSON file')
    .option('--id <workflowId>', 'workflow id (default: <name>-<random>)')
    .option('--detach', 'print the workflow id and return at once')
    .option('--json', 'print the final result as JSON instead of tables')
    .action(async (target: string, options) => withClient((client) => run(client, target, options)));

  program
    .command('status')
    .description('show a pipeline’s steps, their state and its usage')
    .argument('<workflowId>')
    .action(async (workflowId: string) => withClient((client) => status(client, workflowId)));

  program
    .command('output')
    .description('print one step’s whole output as JSON (also one kept in the blob store)')
    .argument('<workflowId>')
    .argument('<stepId>')
    .option('--out <file>', 'write it to this file instead of stdout')
    .action(async (workflowId: string, stepId: string, options: { out?: string }) =>
      withClient((client) =>
        printStepOutput(client, workflowId, stepId, { ...options, store: blobStoreSettings() }),
      ),
    );

  const blobs = program.command('blobs').description('the blob store of large step outputs');
  blobs
    .command('gc')
    .description(
      'remove outputs no open workflow references, a retention period after their last workflow closed',
    )
    .option(
      '--retention <duration>',
      'how long after its last use a blob is kept (7d, 36h, 90m; default PANTHEON_BLOB_RETENTION or 7d)',
      retentionOption,
    )
    .option('--dry-run', 'say what would be removed, remove nothing')
    .option('--json', 'print the decisions as JSON')
    .action(async (options: BlobsGcOptions) => {
      // Resolved before connecting: a bad PANTHEON_BLOB_RETENTION is a usage error, whatever Temporal's state.
      const retention = options.retention ?? retentionFromEnv();
      const store = blobStoreSettings();
      await withClient((client) => blobsGc(client, { ...options, retention, store }));
    });

  program
    .command('list')
    .description('list pipelines by their search attributes')
    .option('--project <project>')
    .option('--pipeline <name>')
    .addOption(new Option('--status <status>').choices(['running', 'succeeded', 'failed', 'cancelled']))
    .addOption(new Option('--limit <n>', 'at most this many').default(20).argParser(positiveNumber))
    .action(async (options) => withClient((client) => list(client, options)));

  const memory = program.command('memory').description('agent memory (Qdrant) of a project');
  memory
    .command('search')
    .description('search a project’s memory: ranked by --query, newest first without one')
    .requiredOption('--project <project>', 'the project whose memory to read')
    .option('--query <text>', 'rank by similarity to this text')
    .addOption(
      new Option('--scope <scope...>', 'scopes to read (private needs --agent)').choices([...MEMORY_SCOPES]),
    )
    .option('--agent <agent>', 'only what this agent wrote; required for its private memory')
    .option('--pipeline <name>', 'only what this pipeline wrote')
    .addOption(new Option('--limit <n>', 'at most this many').default(20).argParser(positiveInteger))
    .option('--json', 'print the memories as JSON')
    .action(async (options: MemorySearchOptions) => {
      process.exitCode = await searchMemory(options);
    });

  program
    .command('pipelines')
    .description('list the code-defined pipelines')
    .action(() => {
      const rows = listCodePipelines().map((p) => [p.name, p.description]);
      process.stdout.write(`${table(['PIPELINE', 'STEPS'], rows)}\n`);
    });
  return program;
}

async function withClient(action: (client: Client) => Promise<number>): Promise<void> {
  const { client, close } = await connectClient();
  try {
    process.exitCode = await action(client);
  } finally {
    await close();
  }
}

export function main(argv: string[] = process.argv): Promise<void> {
  return buildProgram()
    .parseAsync(argv)
    .then(() => undefined)
    .catch((err: unknown) => {
      process.stderr.write(`pantheon: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = err instanceof UsageError ? 2 : 1;
    });
}

if (require.main === module) void main();
