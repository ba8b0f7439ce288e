/**
 * The worker's Ray authentication rule (workers/config.ts): a Ray beyond
 * loopback without token authentication is refused unless explicitly allowed;
 * with token authentication on, the token must be readable.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ConfigError, loadWorkerConfig } from '../../workers/config';
import { isLoopbackHost, rayAddressHost, rayAuthHeaders } from '../../stack/ray-auth';

// Only what the rule reads: the defaults of every other setting apply.
const base = { HOME: os.tmpdir() };

test('a loopback Ray needs no token', () => {
  expect(() => loadWorkerConfig({ ...base, RAY_ADDRESS: '127.0.0.1:6379' })).not.toThrow();
  expect(() => loadWorkerConfig({ ...base, RAY_ADDRESS: 'localhost:6379' })).not.toThrow();
  expect(() => loadWorkerConfig({ ...base, RAY_ADDRESS: '[::1]:6379' })).not.toThrow();
  expect(() => loadWorkerConfig({ ...base, RAY_ADDRESS: 'auto' })).not.toThrow();
});

test('a remote Ray without token authentication is refused, naming the variable and the way out', () => {
  for (const env of [
    { RAY_ADDRESS: '10.0.0.5:6379' },
    { RAY_ADDRESS: 'ray://ray-head.prod.svc:10001' },
    { RAY_ADDRESS: 'ray-head:6379', RAY_AUTH_MODE: 'disabled' },
    { RAY_DASHBOARD_URL: 'http://ray-head:8265' },
  ]) {
    const load = () => loadWorkerConfig({ ...base, ...env });
    expect(load).toThrow(ConfigError);
    expect(load).toThrow(/beyond loopback.*RAY_AUTH_MODE=token.*PANTHEON_ALLOW_UNAUTHENTICATED_RAY=1/);
  }
  expect(() => loadWorkerConfig({ ...base, RAY_ADDRESS: '10.0.0.5:6379' })).toThrow(
    /^RAY_ADDRESS points at 10\.0\.0\.5/,
  );
});

test('PANTHEON_ALLOW_UNAUTHENTICATED_RAY=1 accepts a remote Ray without a token, explicitly', () => {
  expect(() =>
    loadWorkerConfig({ ...base, RAY_ADDRESS: '10.0.0.5:6379', PANTHEON_ALLOW_UNAUTHENTICATED_RAY: '1' }),
  ).not.toThrow();
  expect(() =>
    loadWorkerConfig({ ...base, RAY_ADDRESS: '10.0.0.5:6379', PANTHEON_ALLOW_UNAUTHENTICATED_RAY: '0' }),
  ).toThrow(ConfigError);
});

describe('with RAY_AUTH_MODE=token', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'ray-auth-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  test('a remote Ray is accepted when its token can be read, and the dashboard calls carry it', () => {
    const file = path.join(dir, 'token');
    fs.writeFileSync(file, 'abc123\n');
    const env = { ...base, RAY_ADDRESS: '10.0.0.5:6379', RAY_AUTH_MODE: 'token', RAY_AUTH_TOKEN_PATH: file };
    expect(() => loadWorkerConfig(env)).not.toThrow();
    expect(rayAuthHeaders(env)).toEqual({ authorization: 'Bearer abc123' });
    expect(rayAuthHeaders({ ...env, RAY_AUTH_TOKEN: 'from-env' })).toEqual({
      authorization: 'Bearer from-env',
    });
    expect(rayAuthHeaders({ ...base })).toEqual({});
  });

  test('a token that cannot be read is refused before anything connects', () => {
    const missing = { ...base, RAY_ADDRESS: '10.0.0.5:6379', RAY_AUTH_MODE: 'token' };
    expect(() => loadWorkerConfig({ ...missing, RAY_AUTH_TOKEN_PATH: path.join(dir, 'absent') })).toThrow(
      /RAY_AUTH_MODE=token but no Ray token could be read/,
    );
    const empty = path.join(dir, 'empty');
    fs.writeFileSync(empty, '\n');
    expect(() => loadWorkerConfig({ ...missing, RAY_AUTH_TOKEN_PATH: empty })).toThrow(ConfigError);
  });
});

test('Ray addresses and hosts are read as Ray reads them', () => {
  expect(rayAddressHost('10.0.0.5:6379')).toBe('10.0.0.5');
  expect(rayAddressHost('ray://head:10001')).toBe('head');
  expect(rayAddressHost('[fd00::2]:6379')).toBe('fd00::2');
  expect(rayAddressHost('auto')).toBeUndefined();
  expect(isLoopbackHost('127.0.0.1')).toBe(true);
  expect(isLoopbackHost('::ffff:127.0.0.1')).toBe(true);
  expect(isLoopbackHost('[::1]')).toBe(true);
  expect(isLoopbackHost('192.0.2.2')).toBe(false);
  expect(isLoopbackHost('0.0.0.0')).toBe(false);
  expect(isLoopbackHost('::')).toBe(false);
});
