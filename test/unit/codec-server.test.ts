/**
 * The Web UI's codec server (stack/codec-server.ts) over real HTTP on
 * loopback, reading a real blob store in a temporary directory: references
 * are shown decoded, large or missing ones stay references, other payloads
 * pass untouched, and only the UI's origins get CORS headers.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import type { AddressInfo } from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import type { Server } from 'node:http';
import { expandBlobRefs, type BlobRef } from '../../core/schemas/blob-ref';
import { blobFile, directoryBlobStore } from '../../stack/blob-store';
import { createCodecServer } from '../../stack/codec-server';

const UI = 'http://127.0.0.1:8233';
let dir: string;
let server: Server;
let url: string;

/** Writes a value into the store as the Ray side would; returns its reference. */
function put(value: unknown): BlobRef {
  const text = JSON.stringify(value);
  const ref: BlobRef = {
    $blob: `sha256:${crypto.createHash('sha256').update(text).digest('hex')}`,
    bytes: Buffer.byteLength(text),
    preview: text.slice(0, 200),
  };
  fs.mkdirSync(path.dirname(blobFile(dir, ref)), { recursive: true });
  fs.writeFileSync(blobFile(dir, ref), text);
  return ref;
}

const jsonPayload = (value: unknown) => ({
  metadata: { encoding: Buffer.from('json/plain').toString('base64') },
  data: Buffer.from(JSON.stringify(value)).toString('base64'),
});
const valueOf = (payload: { data?: string }) => JSON.parse(Buffer.from(payload.data!, 'base64').toString());

async function decode(payloads: unknown[], route = '/decode') {
  const res = await fetch(`${url}${route}`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', 'X-Namespace': 'default', Origin: UI },
    body: JSON.stringify({ payloads }),
  });
  return {
    status: res.status,
    headers: res.headers,
    body: (await res.json()) as { payloads: { data?: string }[] },
  };
}

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-codec-'));
  server = createCodecServer({ store: directoryBlobStore(dir), maxBlobBytes: 1000, origins: [UI] });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a step result holding a reference is shown with the data, at the reference’s path', async () => {
  const ref = put({ rows: [1, 2, 3], note: 'é' });
  const { status, body, headers } = await decode([
    jsonPayload({ output: ref, attempt: 1 }),
    jsonPayload({ args: [{ ...ref, path: 'rows' }] }),
  ]);
  expect(status).toBe(200);
  expect(headers.get('access-control-allow-origin')).toBe(UI);
  expect(valueOf(body.payloads[0]!)).toEqual({ output: { rows: [1, 2, 3], note: 'é' }, attempt: 1 });
  expect(valueOf(body.payloads[1]!)).toEqual({ args: [[1, 2, 3]] });
});

test('large, missing and look-alike references, and payloads that are not JSON, come back as they were', async () => {
  const large = put('x'.repeat(2000));
  const missing = { ...put('gone'), $blob: `sha256:${'0'.repeat(64)}` };
  const binary = { metadata: { encoding: Buffer.from('binary/plain').toString('base64') }, data: 'AAEC' };
  const payloads = [
    jsonPayload({ output: large }),
    jsonPayload([missing]),
    binary,
    jsonPayload({ $blob: 'x' }),
  ];
  const { body } = await decode(payloads, '/default/decode');
  expect(body.payloads).toEqual(payloads);
});

test('encode returns payloads as they are; other routes, methods and bodies are refused', async () => {
  const payload = jsonPayload({ output: put('y') });
  expect((await decode([payload], '/encode')).body.payloads).toEqual([payload]);
  expect((await fetch(`${url}/other`, { method: 'POST' })).status).toBe(404);
  expect((await fetch(`${url}/decode`)).status).toBe(405);
  const bad = await fetch(`${url}/decode`, { method: 'POST', body: '{"payloads": 3}' });
  expect(bad.status).toBe(400);
  expect(await bad.json()).toEqual({ error: expect.stringMatching(/^payloads: /) });
});

test('a preflight from the Web UI is answered; another origin gets no CORS grant', async () => {
  const preflight = await fetch(`${url}/decode`, { method: 'OPTIONS', headers: { Origin: UI } });
  expect(preflight.status).toBe(204);
  expect(preflight.headers.get('access-control-allow-headers')).toMatch(/X-Namespace/);
  const foreign = await fetch(`${url}/decode`, {
    method: 'POST',
    headers: { Origin: 'http://evil.example' },
    body: '{"payloads":[]}',
  });
  expect(foreign.headers.get('access-control-allow-origin')).toBeNull();
});

test('expandBlobRefs keeps the same object when nothing is replaced', () => {
  const value = { a: [1, { b: 'c' }] };
  expect(expandBlobRefs(value, () => 'never')).toBe(value);
});
