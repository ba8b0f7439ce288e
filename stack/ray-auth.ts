/**
 * Ray token authentication (Ray ≥ 2.52): with `RAY_AUTH_MODE=token` every Ray
 * process refuses gRPC and HTTP requests that do not carry the cluster's token
 * (GCS, raylets, object managers, workers, the dashboard and its agents, the
 * Jobs API). The local stack keeps its nodes on 127.0.0.1
 * (ray-tasks/pantheon_runtime/loopback_ray.py) and turns the token on as well:
 * loopback is shared with every other user and process of the host. On a real
 * cluster, whose nodes must listen beyond loopback, the token is the fence
 * (docs/security.md).
 *
 * The environment is the one source of truth, with Ray's own variable names:
 * `RAY_AUTH_MODE`, then `RAY_AUTH_TOKEN` or the file at `RAY_AUTH_TOKEN_PATH`
 * (or Ray's default, ~/.ray/auth_token). The Python side (bridge, dispatcher
 * host, node launcher) reads them through Ray itself; the TypeScript side's
 * HTTP calls to the dashboard take their header from `rayAuthHeaders`.
 */
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export const RAY_AUTH_ENV_KEYS = ['RAY_AUTH_MODE', 'RAY_AUTH_TOKEN', 'RAY_AUTH_TOKEN_PATH'] as const;

/** The token of `env`'s Ray when token authentication is on; undefined when it is off. */
export function rayAuthToken(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.RAY_AUTH_MODE !== 'token') return undefined;
  if (env.RAY_AUTH_TOKEN) return env.RAY_AUTH_TOKEN.trim();
  const file = env.RAY_AUTH_TOKEN_PATH || path.join(os.homedir(), '.ray', 'auth_token');
  const token = fs.readFileSync(file, 'utf8').trim();
  // As Ray does: a token file that is named but empty is a misconfiguration, not "no auth".
  if (!token) throw new Error(`RAY_AUTH_MODE=token but the token file ${file} is empty`);
  return token;
}

/** Headers for an HTTP request to the Ray dashboard (state API, Jobs API) of `env`'s Ray. */
export function rayAuthHeaders(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const token = rayAuthToken(env);
  return token === undefined ? {} : { authorization: `Bearer ${token}` };
}

/**
 * The local stack's token: created once (256 random bits, readable by its
 * owner only) and kept in the state folder, so every process of the stack and
 * every worker pointed at it reads the same one.
 */
export function ensureTokenFile(file: string): void {
  if (fs.existsSync(file) && fs.readFileSync(file, 'utf8').trim()) return;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, randomBytes(32).toString('hex') + '\n', { mode: 0o600 });
}

/** Whether `host` (a name or an address, IPv6 with or without brackets) names this machine's loopback. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase();
  return h === 'localhost' || h === '::1' || /^127\./.test(h) || /^::ffff:127\./.test(h);
}

/**
 * The host of a Ray address as `ray.init` takes it: `host:port`, `ray://host:port`,
 * `[v6]:port`; undefined for `auto` and `local`, which name a Ray on this machine.
 */
export function rayAddressHost(address: string): string | undefined {
  const a = address.trim().replace(/^ray:\/\//, '');
  if (a === 'auto' || a === 'local') return undefined;
  const v6 = /^\[([^\]]+)\]/.exec(a);
  if (v6) return v6[1];
  const colons = a.split(':').length - 1;
  return colons === 1 ? a.slice(0, a.indexOf(':')) : a;
}
