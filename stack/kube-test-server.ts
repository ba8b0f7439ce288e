/**
 * A real Kubernetes API server for the kuberay provider's tests and the
 * chart's, started by the project itself on loopback:
 *
 * - etcd (Debian's `etcd-server`), with its data in the state directory;
 * - the CRD-only API server of k8s.io/apiextensions-apiserver, built once with
 *   `go install` (stack/go-tools.ts), serving TLS with a throwaway CA made at
 *   start, and trusting client certificates signed by it (`admin` is in
 *   `system:masters`; `developer` is an ordinary user);
 * - its token and access review webhook (stack/kube-access-reviewer.ts), so a
 *   service-account token authenticates as it would in a cluster, and RBAC
 *   objects decide what a non-admin may do;
 * - the RayCluster CRD of the pinned KubeRay module, installed and Established.
 *
 * What it is not: it serves no core API (no Pods, Namespaces, RBAC objects), so
 * nothing reconciles a RayCluster into pods. It checks a client's side of the
 * contract with the real server code: authentication, authorization by
 * webhook, the CRD's OpenAPI validation, pruning, defaulting, JSON Patch and
 * optimistic concurrency. See docs/kubernetes.md.
 *
 * Everything lives in <PANTHEON_STATE_DIR>/kube: pki/, kubeconfigs, etcd data,
 * logs and server.json (ports and pids), so `down` from another process finds
 * what `up` started. Start is idempotent: a server that answers is kept.
 */
import { execFile, spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as https from 'node:https';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { z } from 'zod';
import { freePort, isAlive, spawnDetached, stopGroup, tailFile, waitFor } from './processes';
import { REPO_ROOT } from './config';
import {
  APIEXTENSIONS_APISERVER,
  cacheDir,
  ensureGoTool,
  goModuleFile,
  KUBERAY_OPERATOR_MODULE,
} from './go-tools';
import type { RbacObject, TokensFile } from './kube-access-reviewer';

const run = promisify(execFile);

const RAYCLUSTER_CRD_FILE = 'config/crd/bases/ray.io_rayclusters.yaml';
const RAYCLUSTER_CRD_NAME = 'rayclusters.ray.io';
/** A throwaway CA and certificates: valid long enough for a day's work, never reused across starts. */
const CERT_DAYS = 7;
/**
 * Ready, except for the check that its informers synced: one watches Services in the "core"
 * API (to resolve webhook services), which this server does not serve, so it never syncs.
 */
const READY_PATH = '/readyz?exclude=informer-sync';

const serverStateSchema = z.object({
  apiPort: z.number().int(),
  etcdPort: z.number().int(),
  reviewerPort: z.number().int(),
  pids: z.object({ etcd: z.number().int(), reviewer: z.number().int(), apiserver: z.number().int() }),
});
type ServerState = z.infer<typeof serverStateSchema>;

export type KubeUser = 'admin' | 'developer';

export interface KubeTestServer {
  /** https://127.0.0.1:<port> */
  url: string;
  dir: string;
  caFile: string;
  /** A kubeconfig with the client certificate of `user` (admin: system:masters). */
  kubeconfigFile(user: KubeUser): string;
  /** Registers a service-account token with the reviewer; returns the token. */
  mintServiceAccountToken(namespace: string, name: string): string;
  /** Replaces the RBAC objects in force (Role, RoleBinding, ClusterRole, ClusterRoleBinding). */
  setRbac(objects: readonly RbacObject[]): void;
}

const log = (message: string) => process.stderr.write(`[k8s] ${message}\n`);

export function kubeStateDir(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(path.resolve(env.PANTHEON_STATE_DIR ?? path.join(REPO_ROOT, '.state')), 'kube');
}

function readState(dir: string): ServerState | undefined {
  try {
    return serverStateSchema.parse(JSON.parse(fs.readFileSync(path.join(dir, 'server.json'), 'utf8')));
  } catch {
    return undefined;
  }
}

function handle(dir: string, state: ServerState): KubeTestServer {
  const pki = path.join(dir, 'pki');
  return {
    url: `https://127.0.0.1:${state.apiPort}`,
    dir,
    caFile: path.join(pki, 'ca.crt'),
    kubeconfigFile: (user) => path.join(dir, `${user}.kubeconfig`),
    mintServiceAccountToken(namespace, name) {
      const file = path.join(dir, 'reviewer', 'tokens.json');
      const tokens = JSON.parse(fs.readFileSync(file, 'utf8')) as TokensFile;
      const token = randomBytes(24).toString('base64url');
      tokens[token] = {
        username: `system:serviceaccount:${namespace}:${name}`,
        uid: randomUUID(),
        groups: ['system:serviceaccounts', `system:serviceaccounts:${namespace}`, 'system:authenticated'],
      };
      writeFileAtomic(file, JSON.stringify(tokens, null, 2));
      return token;
    },
    setRbac(objects) {
      writeFileAtomic(path.join(dir, 'reviewer', 'rbac.json'), JSON.stringify(objects, null, 2));
    },
  };
}

function writeFileAtomic(file: string, content: string): void {
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, content);
  fs.renameSync(tmp, file);
}

/** GET a path of the API server as admin; resolves with the status code and body. */
function adminGet(dir: string, port: number, urlPath: string): Promise<{ status: number; body: string }> {
  const pki = path.join(dir, 'pki');
  return new Promise((resolve, reject) => {
    const request = https.get(
      {
        host: '127.0.0.1',
        port,
        path: urlPath,
        ca: fs.readFileSync(path.join(pki, 'ca.crt')),
        cert: fs.readFileSync(path.join(pki, 'admin.crt')),
        key: fs.readFileSync(path.join(pki, 'admin.key')),
        timeout: 5_000,
      },
      (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () => resolve({ status: response.statusCode ?? 0, body }));
      },
    );
    request.on('timeout', () => request.destroy(new Error('timed out')));
    request.on('error', reject);
  });
}

/** The running server recorded in the state directory, if all of it is alive and it answers. */
export async function runningKubeTestServer(dir = kubeStateDir()): Promise<KubeTestServer | undefined> {
  const state = readState(dir);
  if (!state || !Object.values(state.pids).every(isAlive)) return undefined;
  const ready = await adminGet(dir, state.apiPort, READY_PATH).catch(() => undefined);
  return ready?.status === 200 ? handle(dir, state) : undefined;
}

/** etcd from PATH; when missing, installs Debian's etcd-server as root, or says what to install. */
export async function ensureEtcd(
  searchPath = process.env.PATH ?? '',
  mayInstall = process.getuid?.() === 0 && findOnPath('apt-get', searchPath) !== undefined,
): Promise<string> {
  const found = findOnPath('etcd', searchPath);
  if (found) return found;
  if (!mayInstall) {
    throw new Error(
      'etcd is needed by the Kubernetes test API server and is not on PATH: install it ' +
        '(Debian/Ubuntu: `sudo apt-get install etcd-server`), then run again',
    );
  }
  log('etcd is missing: installing Debian package etcd-server with apt-get');
  const env = {
    PATH: process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin',
    DEBIAN_FRONTEND: 'noninteractive',
  };
  let install = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'etcd-server'], {
    env,
    encoding: 'utf8',
  });
  if (install.status !== 0) {
    spawnSync('apt-get', ['update'], { env, encoding: 'utf8' });
    install = spawnSync('apt-get', ['install', '-y', '--no-install-recommends', 'etcd-server'], {
      env,
      encoding: 'utf8',
    });
  }
  const installed = findOnPath('etcd', searchPath);
  if (install.status !== 0 || !installed) {
    throw new Error(
      `could not install etcd-server with apt-get (exit ${install.status}): ${install.stderr.trim().split('\n').slice(-5).join('\n')}; ` +
        'install etcd yourself (Debian/Ubuntu: `apt-get install etcd-server`) and run again',
    );
  }
  return installed;
}

function findOnPath(name: string, searchPath = process.env.PATH ?? ''): string | undefined {
  for (const dir of searchPath.split(path.delimiter)) {
    const file = path.join(dir, name);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      return file;
    } catch {
      /* not here */
    }
  }
  return undefined;
}

/** The RayCluster CRD of the pinned KubeRay release, copied into the cache once. */
export async function rayClusterCrdFile(): Promise<string> {
  const cached = path.join(
    cacheDir(),
    'crds',
    `kuberay-ray-operator@${KUBERAY_OPERATOR_MODULE.version}`,
    path.basename(RAYCLUSTER_CRD_FILE),
  );
  if (fs.existsSync(cached)) return cached;
  const source = await goModuleFile(KUBERAY_OPERATOR_MODULE, RAYCLUSTER_CRD_FILE);
  fs.mkdirSync(path.dirname(cached), { recursive: true });
  fs.copyFileSync(source, `${cached}.tmp`);
  fs.renameSync(`${cached}.tmp`, cached);
  return cached;
}

async function openssl(args: string[], cwd: string): Promise<void> {
  await run('openssl', args, { cwd, env: { PATH: process.env.PATH ?? '/usr/bin:/bin' } }).catch(
    (error: Error & { code?: string }) => {
      if (error.code === 'ENOENT') {
        throw new Error(
          'openssl is needed to make the test CA: install it (Debian/Ubuntu: `apt-get install openssl`)',
        );
      }
      throw error;
    },
  );
}

/** A key and a certificate signed by the test CA. */
async function issue(pki: string, name: string, subject: string, extensions: string): Promise<void> {
  fs.writeFileSync(path.join(pki, `${name}.ext`), extensions);
  await openssl(
    ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'].concat([
      '-keyout',
      `${name}.key`,
      '-out',
      `${name}.csr`,
      '-subj',
      subject,
    ]),
    pki,
  );
  await openssl(
    ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial'].concat([
      '-days',
      String(CERT_DAYS),
      '-out',
      `${name}.crt`,
      '-extfile',
      `${name}.ext`,
    ]),
    pki,
  );
}

async function makePki(pki: string): Promise<void> {
  fs.rmSync(pki, { recursive: true, force: true });
  fs.mkdirSync(pki, { recursive: true, mode: 0o700 });
  await openssl(
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'].concat([
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
      '-days',
      String(CERT_DAYS),
      '-subj',
      '/CN=pantheon-kube-test-ca',
    ]),
    pki,
  );
  await issue(
    pki,
    'apiserver',
    '/CN=pantheon-kube-test-apiserver',
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n',
  );
  const client =
    'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=clientAuth\n';
  // The organisation is the user's group: system:masters may do anything, as on a real cluster.
  await issue(pki, 'admin', '/O=system:masters/CN=pantheon-admin', client);
  await issue(pki, 'developer', '/O=pantheon-developers/CN=developer', client);
}

function kubeconfig(
  server: string,
  caFile: string,
  user: { name: string; cert?: string; key?: string },
): string {
  // JSON is YAML: kubeconfig loaders (client-go, @kubernetes/client-node) read it as it is.
  return JSON.stringify(
    {
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'pantheon-test', cluster: { server, 'certificate-authority': caFile } }],
      users: [
        {
          name: user.name,
          user: user.cert ? { 'client-certificate': user.cert, 'client-key': user.key } : {},
        },
      ],
      contexts: [{ name: 'pantheon-test', context: { cluster: 'pantheon-test', user: user.name } }],
      'current-context': 'pantheon-test',
    },
    null,
    2,
  );
}

/** Starts the test API server, or returns the one already running for this state directory. */
export async function startKubeTestServer(dir = kubeStateDir()): Promise<KubeTestServer> {
  const running = await runningKubeTestServer(dir);
  if (running) {
    log(`test API server already running at ${running.url}`);
    return running;
  }
  await stopKubeTestServer(dir); // leftovers of a run that died half-way
  const [etcd, apiserver, crd] = await Promise.all([
    ensureEtcd(),
    ensureGoTool(APIEXTENSIONS_APISERVER, log),
    rayClusterCrdFile(),
  ]);
  const started = Date.now();
  const pki = path.join(dir, 'pki');
  const logs = path.join(dir, 'logs');
  const reviewerDir = path.join(dir, 'reviewer');
  fs.rmSync(path.join(dir, 'etcd'), { recursive: true, force: true });
  fs.rmSync(reviewerDir, { recursive: true, force: true });
  fs.rmSync(logs, { recursive: true, force: true });
  fs.mkdirSync(reviewerDir, { recursive: true });
  fs.mkdirSync(logs, { recursive: true });
  fs.writeFileSync(path.join(reviewerDir, 'tokens.json'), '{}');
  fs.writeFileSync(path.join(reviewerDir, 'rbac.json'), '[]');
  await makePki(pki);

  const [apiPort, etcdPort, etcdPeerPort, reviewerPort] = await distinctFreePorts();
  const url = `https://127.0.0.1:${apiPort}`;
  const caFile = path.join(pki, 'ca.crt');
  const admin = { name: 'admin', cert: path.join(pki, 'admin.crt'), key: path.join(pki, 'admin.key') };
  fs.writeFileSync(path.join(dir, 'admin.kubeconfig'), kubeconfig(url, caFile, admin));
  fs.writeFileSync(
    path.join(dir, 'developer.kubeconfig'),
    kubeconfig(url, caFile, {
      name: 'developer',
      cert: path.join(pki, 'developer.crt'),
      key: path.join(pki, 'developer.key'),
    }),
  );
  const reviewerKubeconfig = path.join(dir, 'reviewer.kubeconfig');
  fs.writeFileSync(
    reviewerKubeconfig,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'reviewer', cluster: { server: `http://127.0.0.1:${reviewerPort}` } }],
      users: [{ name: 'apiserver', user: {} }],
      contexts: [{ name: 'reviewer', context: { cluster: 'reviewer', user: 'apiserver' } }],
      'current-context': 'reviewer',
    }),
  );

  const baseEnv = { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir };
  const pids = { etcd: 0, reviewer: 0, apiserver: 0 };
  const record = () =>
    writeFileAtomic(
      path.join(dir, 'server.json'),
      JSON.stringify({ apiPort, etcdPort, reviewerPort, pids } satisfies ServerState, null, 2),
    );
  const etcdUrl = `http://127.0.0.1:${etcdPort}`;
  const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
  pids.etcd = spawnDetached(
    etcd,
    [
      '--name=pantheon-test',
      `--data-dir=${path.join(dir, 'etcd')}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=pantheon-test=${peerUrl}`,
    ],
    { logFile: path.join(logs, 'etcd.log'), env: baseEnv },
  ).pid;
  pids.reviewer = spawnDetached(
    path.join(REPO_ROOT, 'node_modules', '.bin', 'tsx'),
    [path.join(__dirname, 'kube-access-reviewer.ts'), reviewerDir, String(reviewerPort)],
    { logFile: path.join(logs, 'reviewer.log'), env: baseEnv },
  ).pid;
  record();
  try {
    await waitFor(
      'etcd to answer',
      async () => ((await fetch(`${etcdUrl}/health`).then((r) => r.ok)) ? true : undefined),
      60_000,
    );
    pids.apiserver = spawnDetached(
      apiserver,
      [
        `--etcd-servers=${etcdUrl}`,
        '--bind-address=127.0.0.1',
        `--secure-port=${apiPort}`,
        `--tls-cert-file=${path.join(pki, 'apiserver.crt')}`,
        `--tls-private-key-file=${path.join(pki, 'apiserver.key')}`,
        `--client-ca-file=${caFile}`,
        // The "core" API it would watch for admission is itself (it serves none); tokens and
        // access decisions go to the reviewer, as an aggregated server's go to kube-apiserver.
        `--kubeconfig=${path.join(dir, 'admin.kubeconfig')}`,
        `--authentication-kubeconfig=${reviewerKubeconfig}`,
        `--authorization-kubeconfig=${reviewerKubeconfig}`,
        '--authentication-skip-lookup=true',
        // Admission plugins that need core objects (namespaces, webhook configurations, policies)
        // would wait forever for informers this server cannot fill.
        '--disable-admission-plugins=NamespaceLifecycle,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ValidatingAdmissionPolicy,MutatingAdmissionPolicy',
        '--enable-priority-and-fairness=false',
        // Review answers are not cached, so a test that changes RBAC sees the change at once.
        '--authentication-token-webhook-cache-ttl=0s',
        '--authorization-webhook-cache-authorized-ttl=0s',
        '--authorization-webhook-cache-unauthorized-ttl=0s',
      ],
      { logFile: path.join(logs, 'apiserver.log'), env: baseEnv },
    ).pid;
    record();
    await waitFor(
      'the API server to be ready',
      async () => {
        if (!isAlive(pids.apiserver)) {
          throw new Error(`the API server exited:\n${tailFile(path.join(logs, 'apiserver.log'), 15)}`);
        }
        return (await adminGet(dir, apiPort, READY_PATH).catch(() => undefined))?.status === 200
          ? true
          : undefined;
      },
      120_000,
    );
    await installCrd(dir, crd);
  } catch (error) {
    await stopKubeTestServer(dir);
    throw error;
  }
  log(
    `test API server ready at ${url} in ${Math.round((Date.now() - started) / 1000)} s (kubeconfig: ${path.join(dir, 'admin.kubeconfig')})`,
  );
  return handle(dir, readState(dir) as ServerState);
}

async function distinctFreePorts(): Promise<[number, number, number, number]> {
  const ports = new Set<number>();
  while (ports.size < 4) ports.add(await freePort());
  return [...ports] as [number, number, number, number];
}

/** Creates the RayCluster CRD and waits until the server serves it (Established). */
async function installCrd(dir: string, crdFile: string): Promise<void> {
  const { ApiextensionsV1Api, KubeConfig, loadYaml } = await import('@kubernetes/client-node');
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(path.join(dir, 'admin.kubeconfig'));
  const api = kubeConfig.makeApiClient(ApiextensionsV1Api);
  const crd = loadYaml<Parameters<typeof api.createCustomResourceDefinition>[0]['body']>(
    fs.readFileSync(crdFile, 'utf8'),
  );
  await api.createCustomResourceDefinition({ body: crd });
  await waitFor(
    `CRD ${RAYCLUSTER_CRD_NAME} to be Established`,
    async () => {
      const read = await api.readCustomResourceDefinition({ name: RAYCLUSTER_CRD_NAME });
      const established = read.status?.conditions?.some(
        (c) => c.type === 'Established' && c.status === 'True',
      );
      return established ? true : undefined;
    },
    60_000,
  );
}

/** Stops what the state directory says was started, apiserver first, and forgets it. */
export async function stopKubeTestServer(dir = kubeStateDir()): Promise<void> {
  const state = readState(dir);
  if (!state) return;
  for (const pid of [state.pids.apiserver, state.pids.reviewer, state.pids.etcd]) {
    if (pid > 0) await stopGroup(pid, 10_000);
  }
  fs.rmSync(path.join(dir, 'server.json'), { force: true });
  fs.rmSync(path.join(dir, 'etcd'), { recursive: true, force: true });
}
