/**
 * The Web UI's codec server (Temporal's codec server protocol): the UI posts
 * the payloads it is about to show to `/decode` (or `/<namespace>/decode`),
 * and gets them back with every blob-store reference in them replaced by the
 * data it stands for, so a step's large output reads in the UI as if it were
 * inline. A reference above `PANTHEON_CODEC_MAX_BLOB_BYTES` (default 1 MiB: a
 * browser tab is not the place for 100 MB) stays a reference, with its
 * preview. Payloads are not encoded by this project, so `/encode` returns
 * them as they are.
 *
 * Loopback only, answering the Web UI's own origins (CORS); started by the
 * local stack, whose Temporal dev server gets `--ui-codec-endpoint`.
 *
 *   PANTHEON_BLOB_DIR=… PANTHEON_CODEC_PORT=8234 PANTHEON_CODEC_ORIGINS=http://127.0.0.1:8233 \
 *     node --require tsx/cjs stack/codec-server.ts
 */
import * as http from 'node:http';
import { z } from 'zod';
import { blobStoreUrlSchema, expandBlobRefs, isBlobRef, type BlobRef } from '../core/schemas/blob-ref';
import { describeZodError } from '../core/issues';
import { openBlobStore, type BlobStoreAccess } from './blob-store';

const JSON_ENCODING = 'json/plain';
/** What the UI may post at once: a page of history's payloads, each at most Temporal's 2 MB. */
const MAX_BODY_BYTES = 64 * 1024 * 1024;

const payloadsSchema = z.object({
  payloads: z.array(
    z.object({ metadata: z.record(z.string(), z.string()).optional(), data: z.string().optional() }).loose(),
  ),
});
type Payload = z.infer<typeof payloadsSchema>['payloads'][number];

export interface CodecOptions {
  store: BlobStoreAccess;
  /** Larger referenced data stays a reference. */
  maxBlobBytes: number;
}

const fromBase64 = (s: string) => Buffer.from(s, 'base64').toString('utf8');
const toBase64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

/** The distinct references in a value, wherever they are. */
function blobRefsIn(value: unknown, found = new Map<string, BlobRef>()): Map<string, BlobRef> {
  if (isBlobRef(value)) found.set(value.$blob, value);
  else if (Array.isArray(value)) for (const item of value) blobRefsIn(item, found);
  else if (typeof value === 'object' && value !== null)
    for (const item of Object.values(value)) blobRefsIn(item, found);
  return found;
}

/** One payload, its references expanded; any other payload (or one that cannot be read) as it came. */
export async function decodePayload(payload: Payload, options: CodecOptions): Promise<Payload> {
  const encoding = payload.metadata?.encoding;
  if (encoding === undefined || fromBase64(encoding) !== JSON_ENCODING || payload.data === undefined)
    return payload;
  let value: unknown;
  try {
    value = JSON.parse(fromBase64(payload.data));
  } catch {
    return payload;
  }
  // Read first (the store may be remote), then expanded in one synchronous pass.
  const data = new Map<string, unknown>();
  for (const ref of blobRefsIn(value).values()) {
    if (ref.bytes > options.maxBlobBytes) continue;
    try {
      data.set(ref.$blob, JSON.parse(await options.store.readText(ref)));
    } catch {
      // missing or damaged: the reference is what the UI shows
    }
  }
  const expanded = expandBlobRefs(value, (ref) => data.get(ref.$blob));
  return expanded === value ? payload : { ...payload, data: toBase64(JSON.stringify(expanded)) };
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(new Error(`request body above ${MAX_BODY_BYTES} bytes`));
        req.destroy();
      } else chunks.push(chunk);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

export function createCodecServer(options: CodecOptions & { origins: readonly string[] }): http.Server {
  return http.createServer((req, res) => {
    const origin = req.headers.origin;
    if (origin !== undefined && options.origins.includes(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Vary', 'Origin');
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'Content-Type, X-Namespace, Authorization');
    }
    const send = (status: number, body?: unknown) => {
      if (body === undefined) res.writeHead(status).end();
      else res.writeHead(status, { 'Content-Type': 'application/json' }).end(JSON.stringify(body));
    };
    const route = /^(?:\/[^/]+)?\/(decode|encode)$/.exec((req.url ?? '').split('?')[0] ?? '')?.[1];
    if (route === undefined) return send(404, { error: 'not found: POST /decode or /encode' });
    if (req.method === 'OPTIONS') return send(204);
    if (req.method !== 'POST') return send(405, { error: 'POST only' });
    readBody(req)
      .then((text) => {
        let raw: unknown;
        try {
          raw = JSON.parse(text);
        } catch {
          return send(400, { error: 'the body is not JSON' });
        }
        const parsed = payloadsSchema.safeParse(raw);
        if (!parsed.success) return send(400, { error: describeZodError(parsed.error) });
        if (route === 'encode') return send(200, { payloads: parsed.data.payloads });
        return Promise.all(parsed.data.payloads.map((p) => decodePayload(p, options))).then((payloads) =>
          send(200, { payloads }),
        );
      })
      .catch((err: unknown) => send(413, { error: String(err) }));
  });
}

async function main(): Promise<void> {
  const env = z
    .object({
      // The store the Ray side writes: an S3-compatible one (credentials from the AWS SDK's
      // environment) when named, else the directory.
      PANTHEON_BLOB_URL: z
        .string()
        .optional()
        .transform((s) => (s ? s : undefined))
        .pipe(blobStoreUrlSchema.optional()),
      PANTHEON_BLOB_DIR: z.string().min(1).optional(),
      PANTHEON_CODEC_PORT: z.coerce.number().int().min(1).max(65535),
      PANTHEON_CODEC_ORIGINS: z.string().min(1),
      PANTHEON_CODEC_MAX_BLOB_BYTES: z.coerce
        .number()
        .int()
        .min(0)
        .default(1024 * 1024),
    })
    .safeParse(process.env);
  if (!env.success) {
    process.stderr.write(`codec server: ${describeZodError(env.error)}\n`);
    process.exit(2);
  }
  const store = await openBlobStore({
    blobUrl: env.data.PANTHEON_BLOB_URL,
    blobDir: env.data.PANTHEON_BLOB_DIR,
  });
  if (!store) {
    process.stderr.write('codec server: set PANTHEON_BLOB_URL or PANTHEON_BLOB_DIR to the blob store\n');
    process.exit(2);
  }
  const server = createCodecServer({
    store,
    maxBlobBytes: env.data.PANTHEON_CODEC_MAX_BLOB_BYTES,
    origins: env.data.PANTHEON_CODEC_ORIGINS.split(','),
  });
  server.listen(env.data.PANTHEON_CODEC_PORT, '127.0.0.1', () =>
    process.stdout.write(`codec server on http://127.0.0.1:${env.data.PANTHEON_CODEC_PORT}\n`),
  );
  const stop = () =>
    server.close(() => {
      store.close?.();
      process.exit(0);
    });
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (require.main === module) void main();
