/**
 * Blob store retention on the real stack (issue #13): the Ray side pins a
 * referenced output for the workflow that wrote it; while that workflow is
 * open no retention, not even 0, removes it; once it has closed, the blob is
 * kept for the retention period after the close and removed after it, and
 * `pantheon output` then says it was removed after retention.
 *
 * The clock is shortened, not waited for: the collection is given `nowMs`
 * (close time + 1 h + 1 ms) with a retention of 1 hour. Temporal, the Ray side
 * and the store are the real ones. The stack's store is shared with every
 * other test and with whoever uses the stack, so removals are limited to this
 * test's own blob (its content is unique to this run), and the CLI's
 * collection is a dry run: its decisions are the ones a real run acts on.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isBlobRef, type BlobRef } from '../../core/schemas/blob-ref';
import type { PipelineResult } from '../../core/schemas/pipeline-spec';
import {
  applyBlobRetention,
  listBlobStore,
  planBlobRetention,
  temporalWorkflowStates,
  type BlobStorePlan,
} from '../../stack/blob-store';
import { loadStackConfig } from '../../stack/config';
import { runPantheon } from '../helpers/pantheon-cli';
import { startTestEnv, uniqueId, waitUntil, type TestEnv } from '../helpers/test-env';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

const HOUR = 3_600_000;
/** Long enough for the checks made while the workflow is open (a CLI run among them). */
const HOLD_SECONDS = 45;

test('a referenced output is kept while its workflow is open, then removed a retention period after it closed', async () => {
  const blobDir = loadStackConfig().blobDir;
  // The store the stack's Ray nodes write (stack/config.ts rayProcessEnv), named to the CLI too.
  const cliEnv = { TEMPORAL_ADDRESS: env.config.temporal.address, PANTHEON_BLOB_DIR: blobDir };
  const handle = await env.startPipeline({
    name: 'blob-retention',
    project: 'drills',
    steps: [
      // 100,000 characters: above the 64 KiB threshold, so kept by reference; this run's own content.
      { id: 'big', task: 'pantheon_tasks.testkit:text', args: [100_000, `${uniqueId('retention')}-`] },
      // Holds the workflow open after the blob is written.
      { id: 'hold', task: 'pantheon_tasks.testkit:sleep', args: [HOLD_SECONDS], dependsOn: ['big'] },
    ],
  });
  const workflowId = handle.workflowId;
  const progress = await waitUntil(
    'the big step to succeed',
    async () => {
      const p = await env.progress(handle);
      return p.steps.big?.status === 'succeeded' ? p : undefined;
    },
    120_000,
  );
  const ref = progress.steps.big?.output as BlobRef;
  expect(isBlobRef(ref)).toBe(true);
  const hex = ref.$blob.slice('sha256:'.length);
  const pinDir = path.join(blobDir, 'pins', hex.slice(0, 2), hex);
  // The Ray side pinned the blob for this workflow.
  const pinName = crypto.createHash('sha256').update(workflowId).digest('hex');
  expect(fs.readFileSync(path.join(pinDir, pinName), 'utf8')).toBe(workflowId);

  const lookup = temporalWorkflowStates(env.client);
  const ours = (plan: BlobStorePlan): BlobStorePlan => ({
    ...plan,
    blobs: plan.blobs.filter((b) => b.digest === ref.$blob),
    danglingPins: [],
    tempFiles: [],
  });
  const plan = async (nowMs: number, retentionMs: number) =>
    ours(await planBlobRetention(listBlobStore(blobDir), lookup, { nowMs, retentionMs }));

  // While it is open: a retention of 0 keeps it, through the CLI and through a removal.
  const dryRun = await runPantheon(['blobs', 'gc', '--retention', '0s', '--dry-run', '--json'], cliEnv);
  expect({ code: dryRun.code, stderr: dryRun.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
  const report = JSON.parse(dryRun.stdout) as { retentionMs: number; blobs: { digest: string }[] };
  expect(report.retentionMs).toBe(0);
  expect(report.blobs.find((b) => b.digest === ref.$blob)).toMatchObject({
    action: 'keep',
    reason: 'pinned-by-open-workflow',
    openWorkflows: [workflowId],
  });
  const whileOpen = await plan(Date.now(), 0);
  expect(whileOpen.blobs).toEqual([
    expect.objectContaining({
      action: 'keep',
      reason: 'pinned-by-open-workflow',
      openWorkflows: [workflowId],
    }),
  ]);
  expect(await applyBlobRetention(blobDir, whileOpen)).toEqual([]);
  expect(fs.existsSync(path.join(blobDir, hex.slice(0, 2), hex))).toBe(true);

  const result = (await handle.result()) as PipelineResult;
  expect(result.status).toBe('succeeded');
  const closeTimeMs = (await handle.describe()).closeTime!.getTime();

  // Closed, within the hour's retention: kept, and still printed whole.
  const withinRetention = await plan(Date.now(), HOUR);
  expect(withinRetention.blobs).toEqual([
    expect.objectContaining({
      action: 'keep',
      reason: 'within-retention',
      lastUseMs: closeTimeMs,
      removableAtMs: closeTimeMs + HOUR,
    }),
  ]);
  expect(await applyBlobRetention(blobDir, withinRetention)).toEqual([]);
  const printed = await runPantheon(['output', workflowId, 'big'], cliEnv);
  expect(printed.code).toBe(0);
  expect(printed.stdout.length).toBe(100_000 + 3); // the JSON string and a newline

  // An hour and a millisecond after the close: removed, blob and pin.
  const afterRetention = await plan(closeTimeMs + HOUR + 1, HOUR);
  expect(afterRetention.blobs).toEqual([
    expect.objectContaining({ action: 'remove', reason: 'retention-elapsed', lastUseMs: closeTimeMs }),
  ]);
  expect(await applyBlobRetention(blobDir, afterRetention)).toEqual([
    { kind: 'blob', target: ref.$blob, outcome: 'removed', bytes: ref.bytes },
  ]);
  expect(fs.existsSync(path.join(blobDir, hex.slice(0, 2), hex))).toBe(false);
  expect(fs.existsSync(pinDir)).toBe(false);

  const removed = await runPantheon(['output', workflowId, 'big'], cliEnv);
  expect(removed.code).toBe(1);
  expect(removed.stderr).toContain(
    `the output was kept in the blob store as ${ref.$blob} (${ref.bytes} bytes), which is no longer in ${blobDir}: ` +
      'it was removed after the retention period once its workflow had closed (pantheon blobs gc)',
  );
}, 300_000);
