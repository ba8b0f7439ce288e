/**
 * The blob store's retention adapter (stack/blob-store.ts), on a real
 * temporary directory written by the Ray side's own store
 * (ray-tasks/pantheon_runtime/blob_store.py, run with the project's Python),
 * with a clock the test sets (file times and `nowMs`) and workflow states the
 * test gives instead of Temporal's. Also: what `pantheon output` says of a
 * removed blob, the mapping of Temporal's describe to a state, the worker's
 * sweep, and the CLI's `--retention` and PANTHEON_BLOB_RETENTION.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { WorkflowNotFoundError, type Client } from '@temporalio/client';
import pino from 'pino';
import type { WorkflowState } from '../../core/blob-retention';
import type { BlobRef } from '../../core/schemas/blob-ref';
import {
  applyBlobRetention,
  BlobUnavailable,
  collectBlobGarbage,
  directoryBlobStore,
  listBlobStore,
  planBlobRetention,
  readBlobText,
  temporalWorkflowStates,
  type WorkflowStateLookup,
} from '../../stack/blob-store';
import { sweepBlobRetention } from '../../activities/ray/blob-retention';
import { describeCollection, formatRetention, parseRetention, retentionFromEnv } from '../../cli/blobs';
import { VENV_PYTHON } from '../helpers/qdrant-server';

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 0, 1);

let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-blobs-'));
});
afterEach(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Puts texts through the Ray side's BlobStore, each `[text, workflowId | null]`; returns their references. */
function pythonPut(puts: [string, string | null][]): BlobRef[] {
  const script = [
    'import json, sys',
    'from pathlib import Path',
    'from pantheon_runtime.blob_store import BlobStore',
    'store = BlobStore(Path(sys.argv[1]))',
    'print(json.dumps([store.put(text, workflow) for text, workflow in json.loads(sys.stdin.read())]))',
  ].join('\n');
  const result = spawnSync(VENV_PYTHON, ['-c', script, dir], {
    input: JSON.stringify(puts),
    env: { PATH: process.env.PATH ?? '/usr/bin:/bin', PYTHONPATH: path.join(REPO_ROOT, 'ray-tasks') },
    encoding: 'utf8',
  });
  if (result.status !== 0) throw new Error(result.stderr);
  return JSON.parse(result.stdout) as BlobRef[];
}

const hexOf = (ref: { $blob: string } | string) =>
  (typeof ref === 'string' ? ref : ref.$blob).slice('sha256:'.length);
const blobPath = (ref: BlobRef) => path.join(dir, hexOf(ref).slice(0, 2), hexOf(ref));
const pinDirOf = (ref: BlobRef) => path.join(dir, 'pins', hexOf(ref).slice(0, 2), hexOf(ref));

/** Sets the modification time of a blob and of its pins: the test's clock for the store. */
function writtenAt(ref: BlobRef, ms: number): void {
  fs.utimesSync(blobPath(ref), new Date(ms), new Date(ms));
  for (const pin of fs.existsSync(pinDirOf(ref)) ? fs.readdirSync(pinDirOf(ref)) : [])
    fs.utimesSync(path.join(pinDirOf(ref), pin), new Date(ms), new Date(ms));
}

/** Temporal's answers, as the test says: every id asked about is recorded. */
function states(known: Record<string, WorkflowState>): WorkflowStateLookup & { asked: string[][] } {
  const asked: string[][] = [];
  const lookup = async (ids: readonly string[]) => {
    asked.push([...ids].sort());
    return new Map(ids.map((id) => [id, known[id] ?? ({ state: 'unknown' } as WorkflowState)] as const));
  };
  return Object.assign(lookup, { asked });
}

const text = (name: string) => JSON.stringify(`${name}:${'x'.repeat(100)}`);

describe('listing the store the Ray side writes', () => {
  it('finds each blob with its size, time and the workflows that pinned it', () => {
    const [a, b, c] = pythonPut([
      [text('a'), 'wf-1'],
      [text('a'), 'wf-2'],
      [text('b'), null],
    ]);
    expect(a!.$blob).toBe(b!.$blob);
    writtenAt(a!, T0);
    const listing = listBlobStore(dir);
    const byDigest = new Map(listing.blobs.map((x) => [x.digest, x]));
    expect(byDigest.get(a!.$blob)).toMatchObject({ bytes: a!.bytes, mtimeMs: T0 });
    expect([...byDigest.get(a!.$blob)!.pinnedBy].sort()).toEqual(['wf-1', 'wf-2']);
    expect(byDigest.get(c!.$blob)).toMatchObject({ bytes: c!.bytes, pinnedBy: [] });
    expect(listing.danglingPins).toEqual([]);
    expect(listing.tempFiles).toEqual([]);
  });

  it('finds abandoned temporary files and pins whose blob is gone, and ignores what is not the store’s', () => {
    const [a] = pythonPut([[text('a'), 'wf-1']]);
    fs.unlinkSync(blobPath(a!)); // a removal stopped between the blob and its pins
    fs.writeFileSync(path.join(path.dirname(blobPath(a!)), '.incoming-abc'), 'half');
    fs.writeFileSync(path.join(pinDirOf(a!), '.incoming-def'), 'wf');
    fs.writeFileSync(path.join(dir, 'README'), 'not a blob');
    fs.mkdirSync(path.join(dir, 'zz'));
    fs.writeFileSync(path.join(dir, 'zz', 'not-a-digest'), '');
    const listing = listBlobStore(dir);
    expect(listing.blobs).toEqual([]);
    expect(listing.danglingPins).toEqual([expect.objectContaining({ digest: a!.$blob, pinnedBy: ['wf-1'] })]);
    expect(listing.tempFiles.map((f) => path.basename(f.path)).sort()).toEqual([
      '.incoming-abc',
      '.incoming-def',
    ]);
  });

  it('lists an empty store, and a store never written, as empty', () => {
    expect(listBlobStore(path.join(dir, 'never'))).toEqual({ blobs: [], danglingPins: [], tempFiles: [] });
  });
});

describe('a collection with a clock the test sets', () => {
  it('keeps what an open workflow references even with a retention of 0, asking Temporal only about pinning workflows', async () => {
    const [ref] = pythonPut([[text('a'), 'wf-open']]);
    writtenAt(ref!, T0);
    const lookup = states({ 'wf-open': { state: 'open' } });
    const { plan, removals } = await collectBlobGarbage(directoryBlobStore(dir), lookup, {
      nowMs: T0 + 30 * DAY,
      retentionMs: 0,
    });
    expect(plan.blobs[0]).toMatchObject({ action: 'keep', reason: 'pinned-by-open-workflow' });
    expect(removals).toEqual([]);
    expect(lookup.asked).toEqual([['wf-open']]);
    expect(readBlobText(dir, ref!)).toBe(text('a'));
  });

  it('removes a blob, then its pins, once the retention after its workflow’s close is over', async () => {
    const [ref] = pythonPut([[text('a'), 'wf-done']]);
    writtenAt(ref!, T0);
    const lookup = states({ 'wf-done': { state: 'closed', closeTimeMs: T0 + HOUR } });
    const before = await collectBlobGarbage(directoryBlobStore(dir), lookup, {
      nowMs: T0 + HOUR + DAY - 1,
      retentionMs: DAY,
    });
    expect(before.plan.blobs[0]).toMatchObject({ action: 'keep', reason: 'within-retention' });
    expect(readBlobText(dir, ref!)).toBe(text('a'));

    const after = await collectBlobGarbage(directoryBlobStore(dir), lookup, {
      nowMs: T0 + HOUR + DAY,
      retentionMs: DAY,
    });
    expect(after.removals).toEqual([
      { kind: 'blob', target: ref!.$blob, outcome: 'removed', bytes: ref!.bytes },
    ]);
    expect(fs.existsSync(blobPath(ref!))).toBe(false);
    expect(fs.existsSync(pinDirOf(ref!))).toBe(false);
    expect(() => readBlobText(dir, ref!)).toThrow(BlobUnavailable);
    expect(() => readBlobText(dir, ref!)).toThrow(
      /removed after the retention period .* or it was never written/,
    );
    // Nothing is left behind for the next collection.
    expect(listBlobStore(dir)).toEqual({ blobs: [], danglingPins: [], tempFiles: [] });
  });

  it('a dry run removes nothing', async () => {
    const [ref] = pythonPut([[text('a'), null]]);
    writtenAt(ref!, T0);
    const { plan, removals } = await collectBlobGarbage(directoryBlobStore(dir), states({}), {
      nowMs: T0 + DAY,
      retentionMs: 0,
      dryRun: true,
    });
    expect(plan.blobs[0]!.action).toBe('remove');
    expect(removals).toEqual([]);
    expect(readBlobText(dir, ref!)).toBe(text('a'));
  });

  it('removes only what the decision removed: kept blobs and their pins stay readable', async () => {
    const [kept, gone, shared] = pythonPut([
      [text('kept'), 'wf-open'],
      [text('gone'), 'wf-done'],
      [text('shared'), 'wf-done'],
    ]);
    pythonPut([[text('shared'), 'wf-open']]);
    for (const ref of [kept!, gone!, shared!]) writtenAt(ref, T0);
    const lookup = states({ 'wf-open': { state: 'open' }, 'wf-done': { state: 'closed', closeTimeMs: T0 } });
    const { removals } = await collectBlobGarbage(directoryBlobStore(dir), lookup, {
      nowMs: T0 + DAY,
      retentionMs: HOUR,
    });
    expect(removals.map((r) => r.target)).toEqual([gone!.$blob]);
    expect(readBlobText(dir, kept!)).toBe(text('kept'));
    expect(readBlobText(dir, shared!)).toBe(text('shared'));
    expect(fs.readdirSync(pinDirOf(shared!))).toHaveLength(2);
  });

  it('removes pins whose blob is gone and stale temporary files, by the same clock', async () => {
    const [ref] = pythonPut([[text('a'), 'wf-done']]);
    writtenAt(ref!, T0);
    fs.unlinkSync(blobPath(ref!));
    const temp = path.join(path.dirname(blobPath(ref!)), '.incoming-xyz');
    fs.writeFileSync(temp, 'half');
    fs.utimesSync(temp, new Date(T0), new Date(T0));
    const lookup = states({ 'wf-done': { state: 'closed', closeTimeMs: T0 } });
    const { removals } = await collectBlobGarbage(directoryBlobStore(dir), lookup, {
      nowMs: T0 + 2 * DAY,
      retentionMs: DAY,
    });
    expect(removals.map((r) => [r.kind, r.outcome])).toEqual([
      ['dangling-pins', 'removed'],
      ['temporary-file', 'removed'],
    ]);
    expect(fs.existsSync(pinDirOf(ref!))).toBe(false);
    expect(fs.existsSync(temp)).toBe(false);
  });
});

describe('a collection racing with the Ray side', () => {
  const closed = states({ 'wf-done': { state: 'closed', closeTimeMs: T0 }, 'wf-new': { state: 'open' } });

  async function planToRemove(ref: BlobRef) {
    writtenAt(ref, T0);
    const plan = await planBlobRetention(listBlobStore(dir), closed, { nowMs: T0 + DAY, retentionMs: HOUR });
    expect(plan.blobs[0]!.action).toBe('remove');
    return plan;
  }

  it('puts a blob back when a workflow pinned it after the listing (the same content, written again)', async () => {
    const [ref] = pythonPut([[text('a'), 'wf-done']]);
    const plan = await planToRemove(ref!);
    pythonPut([[text('a'), 'wf-new']]);
    fs.utimesSync(blobPath(ref!), new Date(T0), new Date(T0)); // so that only the new pin tells
    expect(await applyBlobRetention(dir, plan)).toEqual([
      { kind: 'blob', target: ref!.$blob, outcome: 'in-use', bytes: ref!.bytes },
    ]);
    expect(readBlobText(dir, ref!)).toBe(text('a'));
    expect(fs.readdirSync(pinDirOf(ref!))).toHaveLength(2);
    expect(listBlobStore(dir).tempFiles).toEqual([]); // the blob was moved back, not left aside
  });

  it('puts a blob back when it was written again without a workflow after the listing', async () => {
    const [ref] = pythonPut([[text('a'), 'wf-done']]);
    const plan = await planToRemove(ref!);
    pythonPut([[text('a'), null]]);
    expect((await applyBlobRetention(dir, plan))[0]!.outcome).toBe('in-use');
    expect(readBlobText(dir, ref!)).toBe(text('a'));
  });

  it('records a blob another collector removed first as gone', async () => {
    const [ref] = pythonPut([[text('a'), 'wf-done']]);
    const plan = await planToRemove(ref!);
    expect((await applyBlobRetention(dir, plan))[0]!.outcome).toBe('removed');
    expect((await applyBlobRetention(dir, plan))[0]!.outcome).toBe('gone');
  });

  it('a put after the removal stores the blob again', async () => {
    const [ref] = pythonPut([[text('a'), 'wf-done']]);
    await applyBlobRetention(dir, await planToRemove(ref!));
    pythonPut([[text('a'), 'wf-new']]);
    expect(readBlobText(dir, ref!)).toBe(text('a'));
  });

  it('leaves pins whose blob was written since the listing', async () => {
    const [ref] = pythonPut([[text('a'), 'wf-done']]);
    writtenAt(ref!, T0);
    const content = fs.readFileSync(blobPath(ref!));
    fs.unlinkSync(blobPath(ref!));
    const plan = await planBlobRetention(listBlobStore(dir), closed, { nowMs: T0 + DAY, retentionMs: HOUR });
    expect(plan.danglingPins[0]!.action).toBe('remove');
    fs.writeFileSync(blobPath(ref!), content); // the put that wrote its pin first has now written the blob
    expect((await applyBlobRetention(dir, plan))[0]).toMatchObject({
      kind: 'dangling-pins',
      outcome: 'in-use',
    });
    expect(fs.readdirSync(pinDirOf(ref!))).toHaveLength(1);
  });
});

describe('reading a blob that is not there', () => {
  const ref: BlobRef = { $blob: `sha256:${'0'.repeat(64)}`, bytes: 12, preview: '"' };

  it('says it was removed after the retention period or never written, when the store is there', () => {
    expect(() => readBlobText(dir, ref)).toThrow(
      `the output was kept in the blob store as ${ref.$blob} (12 bytes), which is no longer in ${dir}: ` +
        'it was removed after the retention period once its workflow had closed (pantheon blobs gc), ' +
        'or it was never written to this store',
    );
  });

  it('names PANTHEON_BLOB_DIR when there is no store at all', () => {
    expect(() => readBlobText(path.join(dir, 'elsewhere'), ref)).toThrow(
      /there is no store at .*elsewhere \(set PANTHEON_BLOB_DIR/,
    );
  });
});

describe('workflow states from Temporal’s describe', () => {
  /** The part of a Client the lookup uses, answering as Temporal would for each id. */
  function clientAnswering(answers: Record<string, () => unknown>): Client {
    return {
      workflow: {
        getHandle: (id: string) => ({
          describe: async () => answers[id]!(),
        }),
      },
    } as unknown as Client;
  }

  it('maps running to open, closed to its close time, not found to unknown', async () => {
    const lookup = temporalWorkflowStates(
      clientAnswering({
        running: () => ({ status: { name: 'RUNNING' } }),
        done: () => ({ status: { name: 'COMPLETED' }, closeTime: new Date(T0) }),
        failed: () => ({ status: { name: 'FAILED' }, closeTime: new Date(T0 + 1) }),
        deleted: () => {
          throw new WorkflowNotFoundError('not found', 'deleted', undefined);
        },
      }),
    );
    expect(await lookup(['running', 'done', 'failed', 'deleted', 'done'])).toEqual(
      new Map<string, WorkflowState>([
        ['running', { state: 'open' }],
        ['done', { state: 'closed', closeTimeMs: T0 }],
        ['failed', { state: 'closed', closeTimeMs: T0 + 1 }],
        ['deleted', { state: 'unknown' }],
      ]),
    );
  });

  it('fails, so that nothing is removed, when Temporal cannot be asked', async () => {
    const lookup = temporalWorkflowStates(
      clientAnswering({
        x: () => {
          throw new Error('14 UNAVAILABLE: connection refused');
        },
      }),
    );
    const [ref] = pythonPut([[text('a'), 'x']]);
    writtenAt(ref!, T0);
    await expect(
      collectBlobGarbage(directoryBlobStore(dir), lookup, { nowMs: T0 + DAY, retentionMs: 0 }),
    ).rejects.toThrow(/UNAVAILABLE/);
    expect(readBlobText(dir, ref!)).toBe(text('a'));
  });
});

describe('the worker’s sweep', () => {
  it('runs the same collection and reports what it removed', async () => {
    const [old, young] = pythonPut([
      [text('old'), 'wf-done'],
      [text('young'), null],
    ]);
    writtenAt(old!, T0);
    writtenAt(young!, T0 + DAY);
    const result = await sweepBlobRetention(
      directoryBlobStore(dir),
      states({ 'wf-done': { state: 'closed', closeTimeMs: T0 } }),
      { nowMs: T0 + DAY + HOUR, retentionMs: DAY },
      pino({ level: 'silent' }),
    );
    expect(result).toEqual({ removed: 1, removedBytes: old!.bytes, kept: 1 });
    expect(readBlobText(dir, young!)).toBe(text('young'));
  });
});

describe('the CLI’s retention', () => {
  it('parses --retention and refuses a bad one with the accepted forms', () => {
    expect(parseRetention('36h')).toEqual({ ok: true, ms: 36 * HOUR });
    expect(parseRetention('7')).toEqual({ ok: false, message: 'a duration such as 7d, 36h, 90m or 1d12h' });
  });

  it('defaults to PANTHEON_BLOB_RETENTION, else 7 days, and names the variable when it is bad', () => {
    expect(retentionFromEnv({})).toBe(7 * DAY);
    expect(retentionFromEnv({ PANTHEON_BLOB_RETENTION: '90m' })).toBe(90 * 60_000);
    expect(() => retentionFromEnv({ PANTHEON_BLOB_RETENTION: 'a week' })).toThrow(
      'invalid environment variable PANTHEON_BLOB_RETENTION: a duration such as 7d, 36h, 90m or 1d12h (got "a week")',
    );
  });

  it('writes a period the way the flag takes it', () => {
    expect([0, 7 * DAY, 36 * HOUR, DAY + 90 * 60_000, 1_500].map(formatRetention)).toEqual([
      '0s',
      '7d',
      '1d12h',
      '1d1h30m',
      '1s500ms',
    ]);
  });

  it('reports what it removed and kept', async () => {
    const [ref] = pythonPut([[text('a'), 'wf-done']]);
    writtenAt(ref!, T0);
    const collection = await collectBlobGarbage(
      directoryBlobStore(dir),
      states({ 'wf-done': { state: 'closed', closeTimeMs: T0 } }),
      {
        nowMs: T0 + DAY,
        retentionMs: HOUR,
        dryRun: true,
      },
    );
    const report = describeCollection(collection, dir, true);
    expect(report).toContain(`blob store ${dir} · retention 1h · dry run`);
    expect(report).toContain('would remove 1 blob (');
    expect(report).toContain('kept 0 (0 B): 0 referenced by open workflows, 0 within retention');
    expect(report).toMatch(new RegExp(`${ref!.$blob}\\s+\\d+ B\\s+2026-01-01 00:00:00\\s+wf-done`));
  });

  it('pantheon blobs gc fails naming the flag before it connects anywhere', () => {
    const result = spawnSync(
      process.execPath,
      [path.join(REPO_ROOT, 'cli', 'bin.js'), 'blobs', 'gc', '--retention', '7x'],
      {
        encoding: 'utf8',
        env: { ...process.env, TEMPORAL_ADDRESS: '127.0.0.1:1' },
        timeout: 60_000,
      },
    );
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain("option '--retention <duration>' argument '7x' is invalid");
    expect(result.stderr).toContain('a duration such as 7d, 36h, 90m or 1d12h');
  });
});
