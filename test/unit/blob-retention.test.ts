/**
 * The blob store's retention decision (core/blob-retention.ts): examples of
 * each rule, the duration the CLI and the worker read, and properties — for
 * any store, workflows and clock, a blob an open workflow pins is never
 * removed, a removed blob's retention really ran out from its last use, and
 * what is removed now stays removable later and with a shorter retention.
 */
import fc from 'fast-check';
import {
  decideBlobRetention,
  MIN_TEMP_FILE_AGE_MS,
  retentionDurationSchema,
  summarizeBlobRetention,
  type BlobRetentionInput,
  type StoredBlob,
  type WorkflowState,
} from '../../core/blob-retention';

const seed = Number(process.env.PANTHEON_FC_SEED ?? Date.now() % 2 ** 31);
process.stdout.write(`[property] fast-check seed ${seed} (PANTHEON_FC_SEED=${seed} replays it)\n`);

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 0, 1);

const blob = (name: string, mtimeMs: number, pinnedBy: string[] = [], bytes = 100): StoredBlob => ({
  digest: `sha256:${name.padEnd(64, '0')}`,
  bytes,
  mtimeMs,
  pinnedBy,
});
const open: WorkflowState = { state: 'open' };
const closedAt = (closeTimeMs: number): WorkflowState => ({ state: 'closed', closeTimeMs });
const unknown: WorkflowState = { state: 'unknown' };

function decide(
  blobs: StoredBlob[],
  workflows: Record<string, WorkflowState>,
  nowMs: number,
  retentionMs = DAY,
) {
  return decideBlobRetention({ blobs, workflows: new Map(Object.entries(workflows)), nowMs, retentionMs });
}

describe('which blobs are kept and which removed', () => {
  it('keeps a blob an open workflow pins, however old and whatever the retention', () => {
    const [decision] = decide(
      [blob('a', 0, ['wf-open', 'wf-done'])],
      { 'wf-open': open, 'wf-done': closedAt(0) },
      T0,
      0,
    ).blobs;
    expect(decision).toMatchObject({
      action: 'keep',
      reason: 'pinned-by-open-workflow',
      openWorkflows: ['wf-open'],
    });
  });

  it('removes a blob a retention period after the last of its workflows closed, not a millisecond before', () => {
    const blobs = [blob('a', T0, ['wf-1', 'wf-2'])];
    const workflows = { 'wf-1': closedAt(T0 + HOUR), 'wf-2': closedAt(T0 + 2 * HOUR) };
    const removableAtMs = T0 + 2 * HOUR + DAY;
    expect(decide(blobs, workflows, removableAtMs - 1).blobs[0]).toMatchObject({
      action: 'keep',
      reason: 'within-retention',
      lastUseMs: T0 + 2 * HOUR,
      removableAtMs,
    });
    expect(decide(blobs, workflows, removableAtMs).blobs[0]).toMatchObject({
      action: 'remove',
      reason: 'retention-elapsed',
      lastUseMs: T0 + 2 * HOUR,
      removableAtMs,
    });
  });

  it('counts from the last write when it is later than the close (written again since)', () => {
    const [decision] = decide([blob('a', T0 + 5 * HOUR, ['wf-1'])], { 'wf-1': closedAt(T0) }, T0 + DAY).blobs;
    expect(decision).toMatchObject({
      action: 'keep',
      lastUseMs: T0 + 5 * HOUR,
      removableAtMs: T0 + 5 * HOUR + DAY,
    });
  });

  it('counts a workflow Temporal no longer knows as closed long ago, so the write alone counts', () => {
    const blobs = [blob('a', T0, ['wf-gone'])];
    expect(decide(blobs, { 'wf-gone': unknown }, T0 + DAY - 1).blobs[0]).toMatchObject({
      action: 'keep',
      lastUseMs: T0,
    });
    expect(decide(blobs, { 'wf-gone': unknown }, T0 + DAY).blobs[0]).toMatchObject({
      action: 'remove',
      lastUseMs: T0,
    });
    // An open workflow beside it still holds the blob.
    expect(
      decide([blob('a', T0, ['wf-gone', 'wf-open'])], { 'wf-gone': unknown, 'wf-open': open }, T0 + 30 * DAY)
        .blobs[0],
    ).toMatchObject({ action: 'keep', reason: 'pinned-by-open-workflow', openWorkflows: ['wf-open'] });
  });

  it('counts an unpinned blob (a put without a workflow) from its write', () => {
    expect(decide([blob('a', T0)], {}, T0 + DAY).blobs[0]).toMatchObject({ action: 'remove', lastUseMs: T0 });
    expect(decide([blob('a', T0)], {}, T0 + DAY, 2 * DAY).blobs[0]).toMatchObject({ action: 'keep' });
  });

  it('keeps a blob whose workflow it was not told about, as if that workflow were open', () => {
    expect(decide([blob('a', 0, ['wf-?'])], {}, T0, 0).blobs[0]).toMatchObject({
      action: 'keep',
      reason: 'pinned-by-open-workflow',
      openWorkflows: ['wf-?'],
    });
  });

  it('a retention of 0 removes everything no open workflow holds', () => {
    const plan = decide(
      [blob('a', T0, ['wf-1']), blob('b', T0, ['wf-2']), blob('c', T0)],
      { 'wf-1': closedAt(T0 + 1), 'wf-2': open },
      T0 + 1,
      0,
    );
    expect(plan.blobs.map((b) => b.action)).toEqual(['remove', 'keep', 'remove']);
  });

  it('decides pins left without their blob by the same rule', () => {
    const plan = decideBlobRetention({
      blobs: [],
      danglingPins: [
        { digest: 'sha256:1', mtimeMs: T0, pinnedBy: ['wf-open'] }, // a put in progress: pin first, blob next
        { digest: 'sha256:2', mtimeMs: T0, pinnedBy: ['wf-done'] },
      ],
      workflows: new Map([
        ['wf-open', open],
        ['wf-done', closedAt(T0)],
      ]),
      nowMs: T0 + DAY,
      retentionMs: DAY,
    });
    expect(plan.danglingPins.map((p) => [p.digest, p.action])).toEqual([
      ['sha256:1', 'keep'],
      ['sha256:2', 'remove'],
    ]);
  });

  it('removes abandoned temporary files after the retention, and never one younger than an hour', () => {
    const tempFiles = [
      { path: 'ab/.incoming-old', mtimeMs: T0 },
      { path: 'ab/.incoming-new', mtimeMs: T0 + 2 * DAY - HOUR + 1 },
    ];
    const input = { blobs: [], tempFiles, workflows: new Map(), nowMs: T0 + 2 * DAY };
    expect(decideBlobRetention({ ...input, retentionMs: DAY }).tempFiles.map((f) => f.action)).toEqual([
      'remove',
      'keep',
    ]);
    // A write in progress is not lost to a collection with a retention of 0.
    const zero = decideBlobRetention({ ...input, retentionMs: 0 }).tempFiles;
    expect(zero[1]).toMatchObject({
      action: 'keep',
      removableAtMs: tempFiles[1]!.mtimeMs + MIN_TEMP_FILE_AGE_MS,
    });
    expect(decideBlobRetention({ ...input, retentionMs: 7 * DAY }).tempFiles[0]).toMatchObject({
      action: 'keep',
    });
  });

  it('gives back the records it was given, with what an adapter added', () => {
    const listed = { ...blob('a', T0), pins: [{ file: '/x', workflowId: 'w', mtimeMs: 1 }] };
    const plan = decideBlobRetention({ blobs: [listed], workflows: new Map(), nowMs: T0, retentionMs: DAY });
    expect(plan.blobs[0]!.pins).toEqual(listed.pins);
  });

  it('sums what it keeps and removes', () => {
    const plan = decide(
      [blob('a', T0, ['o'], 10), blob('b', T0, [], 20), blob('c', T0 - 2 * DAY, [], 40)],
      { o: open },
      T0 + HOUR,
    );
    expect(summarizeBlobRetention(plan)).toEqual({
      removed: 1,
      removedBytes: 40,
      keptOpen: 1,
      keptWithinRetention: 1,
      keptBytes: 30,
      danglingPinsRemoved: 0,
      tempFilesRemoved: 0,
    });
  });
});

describe('retention durations', () => {
  it.each([
    ['7d', 7 * DAY],
    ['36h', 36 * HOUR],
    ['90m', 90 * 60_000],
    ['30s', 30_000],
    ['1d12h', DAY + 12 * HOUR],
    ['0s', 0],
    [' 2h ', 2 * HOUR],
  ])('%s is %d ms', (text, ms) => {
    expect(retentionDurationSchema.parse(text)).toBe(ms);
  });

  it.each(['7', '', 'd', '7x', '-1d', '1.5h', '7 d', 'forever', `${'9'.repeat(20)}d`])(
    'refuses %j',
    (text) => {
      expect(retentionDurationSchema.safeParse(text).success).toBe(false);
    },
  );
});

describe('properties', () => {
  const ids = ['w0', 'w1', 'w2', 'w3', 'w4', 'w5'];
  const stateArb: fc.Arbitrary<WorkflowState> = fc.oneof(
    fc.constant(open),
    fc.constant(unknown),
    fc.integer({ min: 0, max: 100 * DAY }).map(closedAt),
  );
  const inputArb = fc.record({
    // Some ids may have no state at all: they must count as open.
    workflows: fc.dictionary(fc.constantFrom(...ids), stateArb),
    blobs: fc.array(
      fc.record({
        digest: fc.stringMatching(/^sha256:[0-9a-f]{8}$/),
        bytes: fc.nat(),
        mtimeMs: fc.integer({ min: 0, max: 100 * DAY }),
        pinnedBy: fc.array(fc.constantFrom(...ids), { maxLength: 4 }),
      }),
      { maxLength: 20 },
    ),
    nowMs: fc.integer({ min: 0, max: 200 * DAY }),
    retentionMs: fc.integer({ min: 0, max: 30 * DAY }),
  });
  const toInput = (
    raw: Omit<BlobRetentionInput, 'workflows'> & { workflows: Record<string, WorkflowState> },
  ): BlobRetentionInput => ({ ...raw, workflows: new Map(Object.entries(raw.workflows)) });

  it('never removes a blob an open (or unreported) workflow pins; one decision per blob, in order', () => {
    fc.assert(
      fc.property(inputArb, (raw) => {
        const input = toInput(raw);
        const plan = decideBlobRetention(input);
        expect(plan.blobs.map((b) => b.digest)).toEqual(input.blobs.map((b) => b.digest));
        for (const decision of plan.blobs) {
          const holders = decision.pinnedBy.filter(
            (id) => (input.workflows.get(id) ?? open).state === 'open',
          );
          if (holders.length > 0)
            expect(decision).toMatchObject({ action: 'keep', reason: 'pinned-by-open-workflow' });
        }
      }),
      { seed, numRuns: 500 },
    );
  });

  it('removes exactly when the retention ran out from the later of the write and the last close', () => {
    fc.assert(
      fc.property(inputArb, (raw) => {
        const input = toInput(raw);
        for (const decision of decideBlobRetention(input).blobs) {
          if (decision.reason === 'pinned-by-open-workflow') continue;
          const closes = decision.pinnedBy.map((id) => {
            const s = input.workflows.get(id)!;
            return s.state === 'closed' ? s.closeTimeMs : 0;
          });
          const lastUse = Math.max(decision.mtimeMs, ...closes);
          expect(decision.lastUseMs).toBe(lastUse);
          expect(decision.removableAtMs).toBe(lastUse + input.retentionMs);
          expect(decision.action).toBe(lastUse + input.retentionMs <= input.nowMs ? 'remove' : 'keep');
        }
      }),
      { seed, numRuns: 500 },
    );
  });

  it('what is removed now is removed later too, and with a shorter retention', () => {
    fc.assert(
      fc.property(inputArb, fc.nat({ max: 10 * DAY }), (raw, more) => {
        const input = toInput(raw);
        const now = decideBlobRetention(input).blobs;
        const later = decideBlobRetention({ ...input, nowMs: input.nowMs + more }).blobs;
        const shorter = decideBlobRetention({
          ...input,
          retentionMs: Math.max(0, input.retentionMs - more),
        }).blobs;
        now.forEach((decision, i) => {
          if (decision.action !== 'remove') return;
          expect(later[i]!.action).toBe('remove');
          expect(shorter[i]!.action).toBe('remove');
        });
      }),
      { seed, numRuns: 300 },
    );
  });
});
