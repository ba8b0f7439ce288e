/**
 * The blob store in an S3-compatible bucket, against a real MinIO
 * (stack/minio.ts): the Ray side's S3BlobStore (ray-tasks/pantheon_runtime/
 * blob_store.py) writes, Node's (stack/s3-blob-store.ts) reads and collects,
 * with the retention clock moved forward instead of waited for.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import type { WorkflowState } from '../../core/blob-retention';
import type { BlobRef } from '../../core/schemas/blob-ref';
import {
  BlobUnavailable,
  collectBlobGarbage,
  openBlobStore,
  planBlobRetention,
} from '../../stack/blob-store';
import { startMinio, type MinioServer } from '../../stack/minio';
import { S3BlobStore, s3ClientFromEnv } from '../../stack/s3-blob-store';
import { blobStoreSettings } from '../../cli/blobs';
import { createCodecServer } from '../../stack/codec-server';
import { VENV_PYTHON } from '../helpers/qdrant-server';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const BUCKET = 'pantheon-blobs';
const HOUR = 3_600_000;

let work: string;
let minio: MinioServer;
let prefixCount = 0;
/** Each test gets a prefix of its own in the one bucket: `s3://pantheon-blobs/t<n>`. */
let url: string;
let store: S3BlobStore;

beforeAll(async () => {
  work = fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-s3-'));
  // The first run on a machine builds MinIO (minutes); later runs reuse the binary.
  minio = await startMinio(work, BUCKET, { log: (m) => process.stderr.write(`[minio] ${m}\n`) });
}, 900_000);

afterAll(async () => {
  await minio?.stop();
  fs.rmSync(work, { recursive: true, force: true });
});

beforeEach(() => {
  url = `s3://${BUCKET}/t${++prefixCount}`;
  store = new S3BlobStore(url, s3ClientFromEnv(minio.clientEnv));
});
afterEach(() => store?.close());

/** Runs `script` in the Ray side's Python with the store at `url` as `store`; returns its JSON output. */
function python(script: string, input: unknown): unknown {
  const result = spawnSync(
    VENV_PYTHON,
    [
      '-c',
      [
        'import json, sys',
        'from pantheon_runtime.blob_store import configured_store, BlobNotFound',
        'store = configured_store(sys.argv[1])',
        'data = json.loads(sys.stdin.read())',
        script,
      ].join('\n'),
      url,
    ],
    {
      input: JSON.stringify(input),
      // Only what a Ray node of the stack would have: the AWS SDK's variables, no directory store.
      env: {
        PATH: process.env.PATH ?? '/usr/bin:/bin',
        PYTHONPATH: path.join(REPO_ROOT, 'ray-tasks'),
        ...minio.clientEnv,
      },
      encoding: 'utf8',
    },
  );
  if (result.status !== 0) throw new Error(result.stderr);
  return JSON.parse(result.stdout);
}

/** Puts texts through the Ray side's S3 store, each `[text, workflowId | null]`; returns their references. */
const pythonPut = (puts: [string, string | null][]) =>
  python('print(json.dumps([store.put(t, w) for t, w in data]))', puts) as BlobRef[];

const text = (name: string, size = 200) => JSON.stringify({ name, body: 'x'.repeat(size) });

async function keys(): Promise<string[]> {
  const client = s3ClientFromEnv(minio.clientEnv);
  try {
    const listed = await client.send(
      new ListObjectsV2Command({ Bucket: BUCKET, Prefix: url.slice(`s3://${BUCKET}/`.length) }),
    );
    return (listed.Contents ?? []).map((o) => o.Key!).sort();
  } finally {
    client.destroy();
  }
}

const states = (known: Record<string, WorkflowState>) => async (ids: readonly string[]) =>
  new Map(ids.map((id) => [id, known[id] ?? ({ state: 'unknown' } as WorkflowState)] as const));

describe('an S3-compatible blob store', () => {
  it('holds what the Ray side wrote, by content, in the directory layout, read back byte for byte', async () => {
    const big = text('big', 5 * 1024 * 1024); // above the size the Ray side renews by copy
    const [a, again, b] = pythonPut([
      [big, 'wf-1'],
      [big, 'wf-2'],
      [text('small'), null],
    ]);
    expect(again!.$blob).toBe(a!.$blob);
    expect(a!.bytes).toBe(Buffer.byteLength(big));
    await expect(store.readText(a!)).resolves.toBe(big);
    await expect(store.readText(b!)).resolves.toBe(text('small'));
    const hex = a!.$blob.slice('sha256:'.length);
    const prefix = url.slice(`s3://${BUCKET}/`.length);
    const stored = await keys();
    expect(stored).toContain(`${prefix}/${hex.slice(0, 2)}/${hex}`);
    expect(stored.filter((k) => k.startsWith(`${prefix}/pins/${hex.slice(0, 2)}/${hex}/`))).toHaveLength(2);
    const listing = await store.list();
    expect(listing.blobs.map((x) => [x.digest, x.bytes, [...x.pinnedBy].sort()]).sort()).toEqual(
      [
        [a!.$blob, a!.bytes, ['wf-1', 'wf-2']],
        [b!.$blob, b!.bytes, []],
      ].sort(),
    );
  });

  it('resolves references on the Ray side, with a path, and names what is missing', () => {
    const [ref] = pythonPut([[JSON.stringify({ review: { approved: true } }), null]]);
    expect(
      python('print(json.dumps(store.resolve(data)))', [{ ...ref, path: 'review.approved' }, 1]),
    ).toEqual([true, 1]);
    const missing = { $blob: `sha256:${'0'.repeat(64)}`, bytes: 2, preview: '' };
    expect(
      python(
        'try:\n  store.resolve(data)\nexcept BlobNotFound as err:\n  print(json.dumps(str(err)))',
        missing,
      ),
    ).toBe(`blob ${missing.$blob} is not in the store at ${url}`);
  });

  it('renews a blob written again (its retention starts over) without a second copy', async () => {
    const [ref] = pythonPut([[text('renewed', 8192), 'wf-1']]);
    const first = (await store.list()).blobs[0]!.mtimeMs;
    await new Promise((resolve) => setTimeout(resolve, 1100)); // LastModified may count whole seconds
    pythonPut([[text('renewed', 8192), 'wf-2']]);
    const listing = await store.list();
    expect(listing.blobs).toHaveLength(1);
    expect(listing.blobs[0]!.mtimeMs).toBeGreaterThan(first);
    await expect(store.readText(ref!)).resolves.toBe(text('renewed', 8192));
  });

  it('keeps a blob while its workflow is open or within retention, and removes it after', async () => {
    const [ref] = pythonPut([[text('kept'), 'wf-1']]);
    const now = Date.now();
    const open = await collectBlobGarbage(store, states({ 'wf-1': { state: 'open' } }), {
      nowMs: now + 30 * 24 * HOUR,
      retentionMs: HOUR,
    });
    expect(open.plan.blobs[0]).toMatchObject({ action: 'keep', reason: 'pinned-by-open-workflow' });
    const closed = states({ 'wf-1': { state: 'closed', closeTimeMs: now } });
    const within = await collectBlobGarbage(store, closed, { nowMs: now + HOUR - 60_000, retentionMs: HOUR });
    expect(within.removals).toEqual([]);
    await expect(store.readText(ref!)).resolves.toBe(text('kept'));

    const after = await collectBlobGarbage(store, closed, { nowMs: now + 2 * HOUR, retentionMs: HOUR });
    expect(after.removals).toEqual([
      { kind: 'blob', target: ref!.$blob, outcome: 'removed', bytes: ref!.bytes },
    ]);
    await expect(store.readText(ref!)).rejects.toThrow(BlobUnavailable);
    await expect(store.readText(ref!)).rejects.toThrow(`which is no longer in ${url}`);
    expect(await keys()).toEqual([]); // blob, pin and the copy moved aside: all gone
  });

  it('puts a blob back that a workflow pinned while it was being removed', async () => {
    const [ref] = pythonPut([[text('raced'), 'wf-old']]);
    const now = Date.now();
    const plan = await planBlobRetention(
      await store.list(),
      states({ 'wf-old': { state: 'closed', closeTimeMs: now } }),
      { nowMs: now + 2 * HOUR, retentionMs: HOUR },
    );
    expect(plan.blobs[0]).toMatchObject({ action: 'remove' });
    // Between the decision and the removal, a new workflow writes the same output: it pins, then renews.
    pythonPut([[text('raced'), 'wf-new']]);
    const removals = await store.apply(plan);
    expect(removals[0]).toMatchObject({ kind: 'blob', outcome: 'in-use' });
    await expect(store.readText(ref!)).resolves.toBe(text('raced'));
    expect((await store.list()).tempFiles).toEqual([]);
  });

  it('is shown decoded by the codec server', async () => {
    const [ref] = pythonPut([[JSON.stringify({ rows: [1, 2, 3] }), null]]);
    const server = createCodecServer({ store, maxBlobBytes: 1_000_000, origins: [] });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const payload = {
        metadata: { encoding: Buffer.from('json/plain').toString('base64') },
        data: Buffer.from(JSON.stringify({ output: ref })).toString('base64'),
      };
      const res = await fetch(`http://127.0.0.1:${(server.address() as AddressInfo).port}/decode`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ payloads: [payload] }),
      });
      const { payloads } = (await res.json()) as { payloads: { data: string }[] };
      expect(JSON.parse(Buffer.from(payloads[0]!.data, 'base64').toString('utf8'))).toEqual({
        output: { rows: [1, 2, 3] },
      });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('is what the CLI and the codec server open when PANTHEON_BLOB_URL names it', async () => {
    const [ref] = pythonPut([[text('cli'), null]]);
    const settings = blobStoreSettings({ PANTHEON_BLOB_URL: url, PANTHEON_BLOB_DIR: '/nowhere' });
    expect(settings).toEqual({ blobUrl: url });
    const saved = { ...process.env };
    Object.assign(process.env, minio.clientEnv);
    try {
      const opened = (await openBlobStore(settings))!;
      expect(opened.where).toBe(url);
      await expect(opened.readText(ref!)).resolves.toBe(text('cli'));
      opened.close?.();
    } finally {
      for (const key of Object.keys(minio.clientEnv)) delete process.env[key];
      Object.assign(process.env, saved);
    }
    expect(() => blobStoreSettings({ PANTHEON_BLOB_URL: 's3://Bad_Bucket' })).toThrow(
      'invalid environment variable PANTHEON_BLOB_URL: an s3://bucket[/prefix] URL',
    );
  });
});
