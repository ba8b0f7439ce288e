/**
 * Large outputs in an S3-compatible store (a real MinIO, stack/minio.ts)
 * chosen by the worker's configuration (PANTHEON_BLOB_URL): the Ray side
 * writes there with the credentials of its own environment (set when the
 * stack started: test/helpers/global-setup.ts), a map step runs over a list
 * kept there, the next step is handed the whole value, `pantheon output`
 * reads it back byte for byte, and `pantheon blobs gc` removes it once its workflow has closed and the
 * retention has passed. Nothing of it lands in the stack's directory store.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { isBlobRef, type BlobRef } from '../../core/schemas/blob-ref';
import type { PipelineResult } from '../../core/schemas/pipeline-spec';
import { startMinio, type MinioServer, type MinioSettings } from '../../stack/minio';
import { loadStackConfig } from '../../stack/config';
import { s3ClientFromEnv } from '../../stack/s3-blob-store';
import { TEST_S3_SETTINGS_FILE } from '../helpers/global-setup';
import { runPantheon } from '../helpers/pantheon-cli';
import { startTestEnv, type TestEnv } from '../helpers/test-env';

const BUCKET = 'pantheon-outputs';
const PREFIX = 'runs';
const URL = `s3://${BUCKET}/${PREFIX}`;

let env: TestEnv;
let minio: MinioServer;
let work: string;

beforeAll(async () => {
  env = await startTestEnv({
    worker: false,
    env: { PANTHEON_BLOB_URL: URL, PANTHEON_BLOB_THRESHOLD_BYTES: String(16 * 1024) },
  });
  const settingsFile = path.join(loadStackConfig().stateDir, TEST_S3_SETTINGS_FILE);
  if (!fs.existsSync(settingsFile))
    throw new Error(
      `${settingsFile} is missing: this stack was not started by the tests, so its Ray nodes have no ` +
        'credentials for the test S3 store; stop it (npm run stack:down) and run the tests again',
    );
  const settings = JSON.parse(fs.readFileSync(settingsFile, 'utf8')) as MinioSettings;
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-s3-e2e-'));
  minio = await startMinio(work, BUCKET, {
    settings,
    log: (m) => process.stderr.write(`[minio] ${m}\n`),
  });
  await env.startWorker();
}, 900_000);

afterAll(async () => {
  await env?.close();
  await minio?.stop();
  if (work) fs.rmSync(work, { recursive: true, force: true });
});

async function storedKeys(): Promise<string[]> {
  const client = s3ClientFromEnv(minio.clientEnv);
  try {
    const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${PREFIX}/` }));
    return (listed.Contents ?? []).map((o) => o.Key!);
  } finally {
    client.destroy();
  }
}

const blobKey = (ref: BlobRef) => {
  const hex = ref.$blob.slice('sha256:'.length);
  return `${PREFIX}/${hex.slice(0, 2)}/${hex}`;
};

test('outputs go to the S3 store the worker names, and come back from it whole', async () => {
  const handle = await env.startPipeline({
    name: 's3-outputs',
    project: 'drills',
    steps: [
      { id: 'big', task: 'pantheon_tasks.testkit:text', args: [300_000, 'ab'] },
      // 20,000 numbers (and their 20,000 lengths) take more than the 16 KB threshold as JSON: kept in the store.
      { id: 'items', task: 'pantheon_tasks.testkit:numbers', args: [20_000] },
      { id: 'size', task: 'pantheon_tasks.testkit:measure', args: [{ $step: 'big' }] },
      {
        id: 'lengths',
        task: 'pantheon_tasks.testkit:measure',
        map: { over: { $step: 'items' }, concurrency: 8 },
      },
    ],
  });
  const result = (await handle.result()) as PipelineResult;
  expect(result.status).toBe('succeeded');
  const big = result.steps.big?.output;
  const items = result.steps.items?.output;
  const mapped = result.steps.lengths?.output;
  for (const ref of [big, items, mapped]) expect(isBlobRef(ref)).toBe(true);
  // The next step got the value, not the reference; the map ran over the list kept in S3.
  expect(result.steps.size?.output).toBe(300_002);
  expect(result.steps.lengths?.items).toMatchObject({ total: 20_000, succeeded: 20_000, failed: 0 });

  const keys = await storedKeys();
  // Three different contents: three blobs (the store keeps equal contents once).
  expect(new Set([big, items, mapped].map((ref) => (ref as BlobRef).$blob)).size).toBe(3);
  for (const ref of [big, items, mapped] as BlobRef[]) expect(keys).toContain(blobKey(ref));
  // Pinned for the workflow that wrote them, as in the directory store.
  expect(keys.filter((k) => k.startsWith(`${PREFIX}/pins/`))).toHaveLength(3);
  // The stack's own directory store was not written.
  const hex = (big as BlobRef).$blob.slice('sha256:'.length);
  expect(fs.existsSync(path.join(loadStackConfig().blobDir, hex.slice(0, 2), hex))).toBe(false);

  const cliEnv = {
    TEMPORAL_ADDRESS: env.config.temporal.address,
    PANTHEON_BLOB_URL: URL,
    ...minio.clientEnv,
  };
  const printed = await runPantheon(['output', handle.workflowId, 'big'], cliEnv);
  expect({ code: printed.code, stderr: printed.stderr }).toEqual({ code: 0, stderr: '' });
  expect(printed.stdout === `${JSON.stringify('ab'.repeat(150_000))}\n`).toBe(true);
  const list = await runPantheon(['output', handle.workflowId, 'lengths'], cliEnv);
  expect(JSON.parse(list.stdout)).toEqual(Array.from({ length: 20_000 }, (_, i) => String(i).length));

  // Closed and past a retention of 0: the collection removes all three, and the CLI says so after.
  const gc = await runPantheon(['blobs', 'gc', '--retention', '0s', '--json'], cliEnv);
  expect(gc.code).toBe(0);
  const report = JSON.parse(gc.stdout) as {
    blobStore: string;
    removals: { kind: string; outcome: string }[];
  };
  expect(report.blobStore).toBe(URL);
  expect(report.removals.filter((r) => r.kind === 'blob' && r.outcome === 'removed')).toHaveLength(3);
  expect(await storedKeys()).toEqual([]);
  const gone = await runPantheon(['output', handle.workflowId, 'big'], cliEnv);
  expect(gone.code).toBe(1);
  expect(gone.stderr).toContain(`which is no longer in ${URL}`);
}, 600_000);
