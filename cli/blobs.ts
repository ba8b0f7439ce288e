/**
 * `pantheon blobs gc [--retention 7d] [--dry-run] [--json]`: removes from the
 * blob store (ray-tasks/pantheon_runtime/blob_store.py) the step outputs no
 * open workflow references and whose retention period is over: the period
 * runs from the later of a blob's last write and the close of the last
 * workflow that pins it (core/blob-retention.ts decides; stack/blob-store.ts
 * lists, asks Temporal and removes).
 */
import type { Client } from '@temporalio/client';
import {
  DEFAULT_BLOB_RETENTION_MS,
  retentionDurationSchema,
  summarizeBlobRetention,
} from '../core/blob-retention';
import { blobStoreUrlSchema } from '../core/schemas/blob-ref';
import { loadStackConfig } from '../stack/config';
import {
  collectBlobGarbage,
  openBlobStore,
  temporalWorkflowStates,
  type BlobCollection,
  type BlobStoreSettings,
} from '../stack/blob-store';
import { table } from './format';
import { UsageError } from './targets';

export const RETENTION_ENV = 'PANTHEON_BLOB_RETENTION';
export const BLOB_URL_ENV = 'PANTHEON_BLOB_URL';

/**
 * The store the CLI reads and collects: PANTHEON_BLOB_URL (an S3-compatible bucket, credentials
 * from the AWS SDK's environment) when set, else PANTHEON_BLOB_DIR, else the local stack's directory.
 */
export function blobStoreSettings(env: NodeJS.ProcessEnv = process.env): BlobStoreSettings {
  const url = env[BLOB_URL_ENV];
  if (url) {
    const parsed = blobStoreUrlSchema.safeParse(url);
    if (!parsed.success)
      throw new UsageError(
        `invalid environment variable ${BLOB_URL_ENV}: ${parsed.error.issues[0]!.message} (got "${url}")`,
      );
    return { blobUrl: parsed.data };
  }
  return { blobDir: env.PANTHEON_BLOB_DIR || loadStackConfig(env).blobDir };
}

export interface BlobsGcOptions {
  /** Milliseconds; unset: PANTHEON_BLOB_RETENTION, else 7 days. */
  retention?: number;
  dryRun?: boolean;
  json?: boolean;
}

/** A retention as `--retention` and PANTHEON_BLOB_RETENTION take it (core/blob-retention.ts), or why it is not one. */
export function parseRetention(text: string): { ok: true; ms: number } | { ok: false; message: string } {
  const parsed = retentionDurationSchema.safeParse(text);
  return parsed.success
    ? { ok: true, ms: parsed.data }
    : { ok: false, message: parsed.error.issues.map((i) => i.message).join('; ') };
}

/** The retention without a flag: PANTHEON_BLOB_RETENTION, validated the same way, or 7 days. */
export function retentionFromEnv(env: NodeJS.ProcessEnv = process.env): number {
  const text = env[RETENTION_ENV];
  if (text === undefined || text === '') return DEFAULT_BLOB_RETENTION_MS;
  const parsed = parseRetention(text);
  if (!parsed.ok)
    throw new UsageError(`invalid environment variable ${RETENTION_ENV}: ${parsed.message} (got "${text}")`);
  return parsed.ms;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** `7d`, `36h`, `1d12h`: the largest units that divide the period (the form the flag takes). */
export function formatRetention(ms: number): string {
  if (ms === 0) return '0s';
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of [
    ['d', 86_400_000],
    ['h', 3_600_000],
    ['m', 60_000],
    ['s', 1_000],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return rest > 0 ? `${parts.join('')}${rest}ms` : parts.join('');
}

const iso = (ms: number) => new Date(ms).toISOString().replace('T', ' ').slice(0, 19);

/** The human report of a collection. */
export function describeCollection(collection: BlobCollection, where: string, dryRun: boolean): string {
  const { plan, removals } = collection;
  const s = summarizeBlobRetention(plan);
  const verb = dryRun ? 'would remove' : 'removed';
  const lines = [
    `blob store ${where} · retention ${formatRetention(plan.retentionMs)}${dryRun ? ' · dry run' : ''}`,
    `${verb} ${s.removed} blob${s.removed === 1 ? '' : 's'} (${formatBytes(s.removedBytes)})` +
      (s.danglingPinsRemoved ? `, the pins of ${s.danglingPinsRemoved} blobs no longer stored` : '') +
      (s.tempFilesRemoved ? `, ${s.tempFilesRemoved} abandoned temporary files` : ''),
    `kept ${s.keptOpen + s.keptWithinRetention} (${formatBytes(s.keptBytes)}): ` +
      `${s.keptOpen} referenced by open workflows, ${s.keptWithinRetention} within retention`,
  ];
  const inUse = removals.filter((r) => r.outcome === 'in-use');
  if (inUse.length > 0)
    lines.push(
      `${inUse.length} written again while this ran, so kept: ${inUse.map((r) => r.target).join(', ')}`,
    );
  const removedBlobs = plan.blobs.filter((b) => b.action === 'remove');
  if (removedBlobs.length > 0)
    lines.push(
      '',
      table(
        ['BLOB', 'SIZE', 'LAST USE (UTC)', 'PINNED BY'],
        removedBlobs.map((b) => [
          b.digest,
          formatBytes(b.bytes),
          iso(b.lastUseMs),
          b.pinnedBy.length === 0 ? '—' : b.pinnedBy.join(', '),
        ]),
      ),
    );
  return `${lines.join('\n')}\n`;
}

/** Runs one collection and prints it; returns the exit code. */
export async function blobsGc(
  client: Client,
  options: BlobsGcOptions & { store: BlobStoreSettings; nowMs?: number },
): Promise<number> {
  const retentionMs = options.retention ?? retentionFromEnv();
  const dryRun = options.dryRun ?? false;
  const store = await openBlobStore(options.store);
  if (!store) throw new UsageError('no blob store is named: set PANTHEON_BLOB_URL or PANTHEON_BLOB_DIR');
  let collection: BlobCollection;
  try {
    collection = await collectBlobGarbage(store, temporalWorkflowStates(client), {
      nowMs: options.nowMs ?? Date.now(),
      retentionMs,
      dryRun,
    });
  } finally {
    store.close?.();
  }
  if (options.json) {
    // The pin files' paths are the adapter's business; the decisions and what happened are the report.
    const strip = <T extends { pins: unknown }>({ pins: _pins, ...rest }: T) => rest;
    const { plan, removals } = collection;
    process.stdout.write(
      `${JSON.stringify(
        {
          blobStore: store.where,
          dryRun,
          ...plan,
          blobs: plan.blobs.map(strip),
          danglingPins: plan.danglingPins.map(strip),
          summary: summarizeBlobRetention(plan),
          removals,
        },
        null,
        2,
      )}\n`,
    );
  } else process.stdout.write(describeCollection(collection, store.where, dryRun));
  return 0;
}
