/**
 * JSON over plain HTTP with node:http. Not fetch: Node's fetch sends
 * `Sec-Fetch-Mode: cors`, and Ray's dashboard refuses requests carrying
 * browser headers (405 "method not allowed for browser traffic") on POST.
 */
import * as http from 'node:http';

export function httpJson(
  method: 'GET' | 'POST',
  url: string,
  body?: unknown,
  timeoutMs = 30_000,
  extraHeaders: Record<string, string> = {},
): Promise<{ status: number; json: unknown; text: string }> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request(
      url,
      {
        method,
        headers: {
          ...extraHeaders,
          ...(payload ? { 'content-type': 'application/json', 'content-length': payload.length } : {}),
        },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, json, text });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`${method} ${url} timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end(payload);
  });
}
