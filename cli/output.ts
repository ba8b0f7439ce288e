/**
 * `pantheon output <workflowId> <stepId> [--out file]`: one step's output as
 * JSON, whole, wherever it is kept. It is read from the workflow's history
 * (the step activity's result: there even when the pipeline's result left it
 * out, and without a worker running); an output kept in the blob store
 * (ray-tasks/pantheon_runtime/blob_store.py) is read from there and checked
 * against its hash.
 */
import * as fs from 'node:fs';
import { defaultPayloadConverter, type Client } from '@temporalio/client';
import { AGENT_HOST_TASK } from '../core/agent-host';
import { stepActivityId } from '../core/messages/pipeline';
import { isBlobRef, type BlobRef } from '../core/schemas/blob-ref';
import { BlobUnavailable, openBlobStore, type BlobStoreSettings } from '../stack/blob-store';

export class StepOutputUnavailable extends Error {}

interface ScheduledStep {
  activityId: string;
  activityType: string;
  input: unknown;
}

/** The output the step's last successful activity returned, as the workflow recorded it. */
export async function recordedStepOutput(
  client: Client,
  workflowId: string,
  stepId: string,
): Promise<unknown> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const primary = stepActivityId(stepId);
  const scheduled = new Map<string, ScheduledStep>();
  let found: { step: ScheduledStep; result: unknown } | undefined;
  for (const event of history.events ?? []) {
    const attrs = event.activityTaskScheduledEventAttributes;
    if (attrs && (attrs.activityId === primary || attrs.activityId?.startsWith(`${primary}~`))) {
      const payload = attrs.input?.payloads?.[0];
      scheduled.set(String(event.eventId), {
        activityId: attrs.activityId,
        activityType: attrs.activityType?.name ?? '',
        input: payload ? defaultPayloadConverter.fromPayload(payload) : undefined,
      });
    }
    const completed = event.activityTaskCompletedEventAttributes;
    const step = completed && scheduled.get(String(completed.scheduledEventId));
    if (completed && step) {
      const payload = completed.result?.payloads?.[0];
      found = { step, result: payload ? defaultPayloadConverter.fromPayload(payload) : undefined };
    }
  }
  if (!found)
    throw new StepOutputUnavailable(
      scheduled.size === 0
        ? `workflow ${workflowId} has no step "${stepId}" that ran`
        : `step "${stepId}" of ${workflowId} has no output: it has not succeeded`,
    );
  const result = found.result as {
    output?: unknown;
    submissionId?: string;
    exitCode?: number;
    logTail?: string;
  };
  if (found.step.activityType === 'runRayJob')
    return { submissionId: result.submissionId, exitCode: result.exitCode, logTail: result.logTail };
  // An agent step's activity is the agent host, whose output wraps the agent's own with its usage.
  const task = (found.step.input as { task?: string } | undefined)?.task;
  return task === AGENT_HOST_TASK ? (result.output as { output?: unknown }).output : result.output;
}

async function readReferenced(settings: BlobStoreSettings, ref: BlobRef): Promise<string> {
  const store = await openBlobStore(settings);
  if (!store)
    throw new BlobUnavailable(
      `the output is kept in the blob store as ${ref.$blob} (${ref.bytes} bytes), and no store is named ` +
        '(set PANTHEON_BLOB_URL or PANTHEON_BLOB_DIR to the store the Ray nodes write)',
    );
  try {
    return await store.readText(ref);
  } finally {
    store.close?.();
  }
}

/** Writes the step's output as JSON to `out` (a file) or stdout; returns the exit code. */
export async function printStepOutput(
  client: Client,
  workflowId: string,
  stepId: string,
  options: { out?: string; store: BlobStoreSettings },
): Promise<number> {
  let text: string;
  try {
    const output = await recordedStepOutput(client, workflowId, stepId);
    text = isBlobRef(output) ? await readReferenced(options.store, output) : JSON.stringify(output);
  } catch (err) {
    if (!(err instanceof StepOutputUnavailable || err instanceof BlobUnavailable)) throw err;
    process.stderr.write(`pantheon: ${err.message}\n`);
    return 1;
  }
  if (options.out) fs.writeFileSync(options.out, `${text}\n`);
  else process.stdout.write(`${text}\n`);
  return 0;
}
