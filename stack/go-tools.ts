/**
 * Go programs the project builds from the Go module proxy, once, into a cache
 * outside the repository: the CRD-only Kubernetes API server that the kuberay
 * tests run against, helm, which renders and lints the chart in deploy/, and
 * MinIO, the S3-compatible server the S3 blob store is tested against.
 * Each is pinned here and cached by module and version, so a second run finds
 * the binary and a version bump builds the new one beside the old.
 *
 * The first build is slow (the API server takes about 8 minutes on two busy
 * cores); a build goes to a temporary directory and is renamed into place, so
 * an interrupted one leaves nothing that looks finished.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface GoTool {
  /** The package to `go install`, without the version. */
  pkg: string;
  version: string;
  /** The binary `go install` writes: the package path's last element. */
  binary: string;
  /** Roughly how long the first build takes, for the message shown while it runs. */
  firstBuild: string;
}

/** The API server that serves CustomResourceDefinitions and nothing else; its minor version matches Kubernetes 1.34. */
export const APIEXTENSIONS_APISERVER: GoTool = {
  pkg: 'k8s.io/apiextensions-apiserver',
  version: 'v0.34.2',
  binary: 'apiextensions-apiserver',
  firstBuild: 'about 8 minutes',
};

export const HELM: GoTool = {
  pkg: 'helm.sh/helm/v3/cmd/helm',
  version: 'v3.19.5',
  binary: 'helm',
  firstBuild: 'about 5 minutes',
};

/** An S3-compatible server for the S3 blob store's tests (stack/minio.ts). */
export const MINIO: GoTool = {
  pkg: 'github.com/minio/minio',
  version: 'v0.0.0-20260212201848-7aac2a2c5b7c',
  binary: 'minio',
  firstBuild: 'about 3 to 6 minutes',
};

/** The KubeRay operator module whose RayCluster CRD the test API server installs. */
export const KUBERAY_OPERATOR_MODULE = {
  path: 'github.com/ray-project/kuberay/ray-operator',
  version: 'v1.5.0',
};

/** Where built tools and downloaded CRDs are kept: PANTHEON_CACHE_DIR, else ~/.cache/pantheon. */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.PANTHEON_CACHE_DIR) return path.resolve(env.PANTHEON_CACHE_DIR);
  return path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'pantheon');
}

const GO_VARIABLES = [
  'GOPATH',
  'GOCACHE',
  'GOMODCACHE',
  'GOPROXY',
  'GOSUMDB',
  'GONOSUMDB',
  'GOFLAGS',
  'GOTOOLCHAIN',
  'GOMAXPROCS',
];

/** The environment go runs with: PATH and HOME, and the Go settings the caller has. */
function goEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/local/go/bin:/usr/bin:/bin',
    HOME: process.env.HOME ?? os.homedir(),
    CGO_ENABLED: '0',
  };
  for (const name of GO_VARIABLES) if (process.env[name]) env[name] = process.env[name];
  return { ...env, ...extra };
}

/** The go command: on PATH, or where the official tarball installs it. */
export function findGo(
  searchPath = process.env.PATH ?? '',
  fallbacks: readonly string[] = ['/usr/local/go/bin/go'],
): string {
  const candidates = [...searchPath.split(path.delimiter).map((dir) => path.join(dir, 'go')), ...fallbacks];
  const found = candidates.find((file) => isExecutable(file));
  if (!found) {
    throw new Error(
      'the Go toolchain (go 1.24 or newer) is needed to build the test tools (Kubernetes API server, helm, MinIO) and was not found on PATH ' +
        'or in /usr/local/go/bin: install Go from https://go.dev/dl/ (or a distribution package of Go 1.24+), then run again',
    );
  }
  return found;
}

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** Runs go; resolves with stdout, rejects with the command and the end of its output. */
export function runGo(
  args: string[],
  options: { env?: Record<string, string>; logFile?: string } = {},
): Promise<string> {
  const go = findGo();
  return new Promise((resolve, reject) => {
    const child = spawn(go, args, {
      env: goEnv(options.env),
      // Outside any Go module, so `go install pkg@version` and `go mod download` mean what they say.
      cwd: os.tmpdir(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    const log = options.logFile ? fs.createWriteStream(options.logFile, { flags: 'a' }) : undefined;
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      log?.write(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      log?.write(chunk);
    });
    child.once('error', reject);
    child.once('close', (code) => {
      log?.end();
      if (code === 0) resolve(stdout);
      else
        reject(
          new Error(
            `go ${args.join(' ')} exited with ${code}: ${stderr.trim().split('\n').slice(-15).join('\n')}`,
          ),
        );
    });
  });
}

/** The tool's binary, built with `go install` the first time. */
export async function ensureGoTool(tool: GoTool, log: (message: string) => void): Promise<string> {
  const dir = path.join(cacheDir(), 'bin', `${tool.binary}@${tool.version}`);
  const binary = path.join(dir, tool.binary);
  if (isExecutable(binary)) return binary;
  findGo(); // says what to install before anything else happens
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  const building = `${dir}.building-${process.pid}`;
  fs.rmSync(building, { recursive: true, force: true });
  const logFile = `${dir}.build.log`;
  log(
    `building ${tool.pkg}@${tool.version} with go install (first time only, ${tool.firstBuild}; log: ${logFile})`,
  );
  const started = Date.now();
  await runGo(['install', `${tool.pkg}@${tool.version}`], { env: { GOBIN: building }, logFile });
  try {
    fs.renameSync(building, dir);
  } catch (error) {
    // Another process finished the same build first: keep its binary.
    if (!isExecutable(binary)) throw error;
    fs.rmSync(building, { recursive: true, force: true });
  }
  log(`built ${tool.binary} ${tool.version} in ${Math.round((Date.now() - started) / 1000)} s`);
  return binary;
}

/** A file of a Go module at a pinned version, from the Go module proxy (the module cache after the first time). */
export async function goModuleFile(module: { path: string; version: string }, file: string): Promise<string> {
  const out = await runGo(['mod', 'download', '-json', `${module.path}@${module.version}`]);
  const info = JSON.parse(out) as { Dir?: string; Error?: string };
  if (!info.Dir)
    throw new Error(`go mod download ${module.path}@${module.version}: ${info.Error ?? 'no directory'}`);
  const full = path.join(info.Dir, file);
  if (!fs.existsSync(full)) throw new Error(`${module.path}@${module.version} has no ${file}`);
  return full;
}
