/**
 * What `pantheon run` can start: a JSON pipeline spec (a file), or a
 * code-defined pipeline by name. Both are validated here, before anything
 * is started, with errors that name the field.
 */
import { describeIssues, describeZodError } from '../core/issues';
import * as fs from 'node:fs';
import type { WorkflowStartOptions } from '@temporalio/client';
import { z } from 'zod';
import { codePipelines } from '../agents';
import { parsePipelineSpec } from '../core/dag';
import { PIPELINE_TASK_QUEUE } from '../core/task-queues';
import { fairnessKeyOf } from '../workflows/pipeline/run';

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface RunOptions {
  project?: string;
  priority?: number;
  user?: string;
  fairnessWeight?: number;
  input?: string;
  inputFile?: string;
  id?: string;
}

export interface StartPlan {
  workflowType: string;
  name: string;
  project: string;
  priority: number;
  args: unknown[];
  options: Omit<WorkflowStartOptions, 'args' | 'workflowId'>;
}

function readJson(file: string, what: string): unknown {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read ${what} ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${what} ${file} is not JSON: ${(err as Error).message}`);
  }
}

function startOptions(
  name: string,
  project: string,
  priority: number,
  user: string | undefined,
  summary: string,
) {
  return {
    taskQueue: PIPELINE_TASK_QUEUE,
    staticSummary: summary,
    // The workflow's own tasks get the same priority and fairness as its steps.
    priority: { priorityKey: priority, fairnessKey: fairnessKeyOf({ project, user }) },
  };
}

export function listCodePipelines(): { name: string; description: string }[] {
  return codePipelines.map((p) => ({ name: p.name, description: p.description }));
}

export function planRun(target: string, options: RunOptions): StartPlan {
  const isSpec = target.endsWith('.json') || fs.existsSync(target);
  if (isSpec) {
    const raw = readJson(target, 'pipeline spec') as Record<string, unknown>;
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw))
      throw new UsageError(`pipeline spec ${target}: must be a JSON object`);
    const withOverrides = {
      ...raw,
      ...(options.project !== undefined && { project: options.project }),
      ...(options.priority !== undefined && { priority: options.priority }),
      ...(options.user !== undefined && { user: options.user }),
      ...(options.fairnessWeight !== undefined && { fairnessWeight: options.fairnessWeight }),
    };
    const parsed = parsePipelineSpec(withOverrides);
    if (!parsed.ok) throw new UsageError(`invalid pipeline spec ${target}: ${describeIssues(parsed.issues)}`);
    const spec = parsed.spec;
    return {
      workflowType: 'pipeline',
      name: spec.name,
      project: spec.project,
      priority: spec.priority,
      args: [withOverrides],
      options: startOptions(
        spec.name,
        spec.project,
        spec.priority,
        spec.user,
        `pipeline ${spec.name} for ${spec.project}: ${spec.steps.length} steps, priority ${spec.priority}`,
      ),
    };
  }

  const pipeline = codePipelines.find((p) => p.name === target || p.workflowType === target);
  if (!pipeline) {
    const known = listCodePipelines()
      .map((p) => p.name)
      .join(', ');
    throw new UsageError(`"${target}" is neither a spec file nor a pipeline (pipelines: ${known})`);
  }
  if (options.project === undefined) throw new UsageError(`--project is required to run ${pipeline.name}`);
  const rawInput =
    options.inputFile !== undefined
      ? readJson(options.inputFile, 'input file')
      : options.input !== undefined
        ? (() => {
            try {
              return JSON.parse(options.input) as unknown;
            } catch (err) {
              throw new UsageError(`--input is not JSON: ${(err as Error).message}`);
            }
          })()
        : {};
  const input = (pipeline.input as z.ZodType).safeParse(rawInput);
  if (!input.success)
    throw new UsageError(`invalid input for ${pipeline.name}: ${describeZodError(input.error, 'input')}`);
  const priority = options.priority ?? 3;
  return {
    workflowType: pipeline.workflowType,
    name: pipeline.name,
    project: options.project,
    priority,
    args: [
      {
        project: options.project,
        priority,
        ...(options.user !== undefined && { user: options.user }),
        ...(options.fairnessWeight !== undefined && { fairnessWeight: options.fairnessWeight }),
        input: rawInput,
      },
    ],
    options: startOptions(
      pipeline.name,
      options.project,
      priority,
      options.user,
      `${pipeline.name} for ${options.project}, priority ${priority}: ${pipeline.description}`,
    ),
  };
}
