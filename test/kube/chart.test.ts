/**
 * The Helm chart in deploy/pantheon, rendered by helm itself (built once from
 * the Go module proxy, stack/go-tools.ts):
 *
 * - `helm lint --strict` passes, and `helm template` refuses bad values with a
 *   message that names them;
 * - the ConfigMap is a node-group file the worker's own loader accepts, and the
 *   RayCluster's worker groups are those same groups;
 * - the core objects (Deployment, Service, ConfigMap, ServiceAccount, RBAC,
 *   NetworkPolicy) pass an offline schema check against Kubernetes 1.34's
 *   OpenAPI schemas in strict mode (unknown fields refused), from the PyPI
 *   package kubernetes-validate in .venv;
 * - the RayCluster is created on the real test API server, with KubeRay's
 *   CRD: valid, and stored with nothing pruned;
 * - the chart's ServiceAccount and Role, put in force on that server, let the
 *   kuberay provider (authenticating with a service-account token, as the pod
 *   would) scale that RayCluster, and nothing else.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { CustomObjectsApi, type KubeConfig } from '@kubernetes/client-node';
import { loadAll } from 'js-yaml';
import { KubeRayNodeProvider } from '../../activities/scaling/providers/kuberay/provider';
import type { NodeGroup } from '../../core/schemas/node-groups';
import { CHART_VALUES_SCHEMA_FILE, chartValuesSchema } from '../../stack/chart-values-schema';
import { ensureGoTool, HELM } from '../../stack/go-tools';
import { loadNodeGroups, REPO_ROOT } from '../../stack/config';
import type { RbacObject } from '../../stack/kube-access-reviewer';
import type { KubeTestServer } from '../../stack/kube-test-server';
import {
  inClusterKubeConfig,
  kubeConfigOf,
  kubeTestServer,
  RAY_CLUSTERS,
  readRayCluster,
} from '../helpers/kube';
import { startPodsStandIn } from '../helpers/kube-pods-stand-in';

const CHART = path.join(REPO_ROOT, 'deploy', 'pantheon');
const FIXTURE_GROUPS = path.join(REPO_ROOT, 'test', 'fixtures', 'kube', 'node-groups.json');
const NAMESPACE = 'ml';
const RELEASE = 'demo';
// A helm built with go install has no Kubernetes version stamped in (it assumes 1.20): say which one.
const KUBE_VERSION = ['--kube-version', '1.34.0'];
const REQUIRED = [
  ...KUBE_VERSION,
  '--set',
  'image.repository=registry.example/pantheon',
  '--set',
  'image.tag=0.1.0',
];

type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; annotations?: Record<string, string> };
  [key: string]: unknown;
};

let helmBinary: string;
let helmHome: string;

beforeAll(async () => {
  helmBinary = process.env.PANTHEON_HELM ?? (await ensureGoTool(HELM, () => undefined));
  helmHome = fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-helm-'));
});

afterAll(() => fs.rmSync(helmHome, { recursive: true, force: true }));

function helm(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(helmBinary, args, {
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH,
      HOME: helmHome,
      HELM_CACHE_HOME: path.join(helmHome, 'cache'),
      HELM_CONFIG_HOME: path.join(helmHome, 'config'),
      HELM_DATA_HOME: path.join(helmHome, 'data'),
    },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function render(...args: string[]): K8sObject[] {
  const result = helm(['template', RELEASE, CHART, '--namespace', NAMESPACE, ...REQUIRED, ...args]);
  if (result.status !== 0) throw new Error(`helm template failed: ${result.stderr}`);
  return parseManifests(result.stdout);
}

/**
 * helm's output as plain JSON objects. (Not client-node's loadAllYaml: it turns known kinds into
 * its typed models, renaming fields such as NetworkPolicy's `from` to `_from`.)
 */
function parseManifests(yaml: string): K8sObject[] {
  return loadAll(yaml).filter(Boolean) as K8sObject[];
}

function one(objects: K8sObject[], kind: string, name?: string): K8sObject {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind} ${name ?? ''}, found ${found.length}`);
  return found[0]!;
}

type Container = {
  name: string;
  env?: Array<{ name: string; value?: string; valueFrom?: unknown }>;
  ports?: Array<{ name: string; containerPort: number }>;
  volumeMounts?: Array<{ name: string; mountPath: string }>;
  resources?: unknown;
};
function workerContainer(objects: K8sObject[]): Container {
  const deployment = one(objects, 'Deployment') as unknown as {
    spec: { template: { spec: { containers: Container[] } } };
  };
  return deployment.spec.template.spec.containers[0]!;
}
function env(container: Container, name: string) {
  return container.env?.find((e) => e.name === name);
}

describe('the chart', () => {
  it('passes helm lint --strict', () => {
    const result = helm(['lint', CHART, '--strict', ...REQUIRED]);
    expect(result.stderr).toBe('');
    expect(result.status).toBe(0);
  });

  it('renders the worker, its configuration, RBAC, metrics Service, network policies and the RayCluster, and no Secret', () => {
    const kinds = render()
      .map((o) => `${o.kind}/${o.metadata.name}`)
      .sort();
    expect(kinds).toEqual([
      'ConfigMap/demo-pantheon-node-groups',
      'Deployment/demo-pantheon-worker',
      'NetworkPolicy/demo-pantheon-ray',
      'NetworkPolicy/demo-pantheon-worker',
      'RayCluster/demo-pantheon',
      'Role/demo-pantheon-kuberay-provider',
      'RoleBinding/demo-pantheon-kuberay-provider',
      'Service/demo-pantheon-metrics',
      'ServiceAccount/demo-pantheon-worker',
    ]);
  });

  it('gives the worker a node-group file its own loader accepts, and RayCluster worker groups that are the same groups', () => {
    const objects = render('--set-file', `nodeGroupsFile=${FIXTURE_GROUPS}`);
    const configMap = one(objects, 'ConfigMap') as unknown as {
      metadata: { name: string };
      data: Record<string, string>;
    };
    const worker = workerContainer(objects);

    // The file the worker is told to read is the ConfigMap's key, mounted where the variable says.
    const file = env(worker, 'PANTHEON_NODE_GROUPS')?.value ?? '';
    const mount = worker.volumeMounts?.find((m) => file.startsWith(`${m.mountPath}/`));
    expect(mount?.name).toBe('node-groups');
    const written = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-groups-')), 'node-groups.json');
    fs.writeFileSync(written, configMap.data[path.basename(file)] ?? '');
    const { groups } = loadNodeGroups(written);
    expect(groups).toEqual(loadNodeGroups(FIXTURE_GROUPS).groups);

    const rayCluster = one(objects, 'RayCluster') as unknown as {
      spec: { enableInTreeAutoscaling: boolean; workerGroupSpecs: Array<Record<string, unknown>> };
    };
    expect(rayCluster.spec.enableInTreeAutoscaling).toBe(false);
    expect(rayCluster.spec.workerGroupSpecs.map((g) => g.groupName)).toEqual(groups.map((g) => g.name));
    const [cpu, gpu] = rayCluster.spec.workerGroupSpecs;
    expect(cpu).toMatchObject({
      replicas: 1,
      minReplicas: 1,
      maxReplicas: 6,
      resources: { CPU: '4', memory: String(8192 * 1024 * 1024), disk_gb: '20' },
      labels: { 'pantheon.io/group': 'cpu' },
    });
    expect(gpu).toMatchObject({
      replicas: 0,
      minReplicas: 0,
      maxReplicas: 2,
      resources: { CPU: '8', GPU: '1', a10: '1', memory: String(Math.floor(30720.5 * 1024 * 1024)) },
      labels: { 'pantheon.io/group': 'gpu-a10', accelerator: 'a10' },
      template: {
        spec: {
          containers: [
            expect.objectContaining({
              resources: {
                requests: { cpu: '8', memory: '31745Mi' },
                limits: { memory: '31745Mi', 'nvidia.com/gpu': '1' },
              },
            }),
          ],
        },
      },
    });
  });

  it("grants the provider get and patch on its own RayCluster and list on pods, bound to the worker's service account", () => {
    const objects = render();
    expect(one(objects, 'Role')).toMatchObject({
      rules: [
        {
          apiGroups: ['ray.io'],
          resources: ['rayclusters'],
          resourceNames: ['demo-pantheon'],
          verbs: ['get', 'patch'],
        },
        { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
      ],
    });
    const deployment = one(objects, 'Deployment') as unknown as {
      spec: { template: { spec: { serviceAccountName: string } } };
    };
    expect(one(objects, 'RoleBinding')).toMatchObject({
      roleRef: { kind: 'Role', name: 'demo-pantheon-kuberay-provider' },
      subjects: [
        {
          kind: 'ServiceAccount',
          name: deployment.spec.template.spec.serviceAccountName,
          namespace: NAMESPACE,
        },
      ],
    });
    expect(env(workerContainer(objects), 'PANTHEON_KUBERAY_CLUSTER')?.value).toBe('demo-pantheon');
    expect(env(workerContainer(objects), 'PANTHEON_KUBERAY_NAMESPACE')?.value).toBe(NAMESPACE);
  });

  it('serves metrics on the port the Service and its scrape annotations name', () => {
    const objects = render('--set', 'metrics.port=9555');
    const service = one(objects, 'Service') as unknown as {
      metadata: { annotations: Record<string, string> };
      spec: { ports: Array<{ port: number; targetPort: string }> };
    };
    expect(service.metadata.annotations).toEqual({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '9555',
      'prometheus.io/path': '/metrics',
    });
    const worker = workerContainer(objects);
    expect(service.spec.ports).toEqual([
      { name: 'metrics', port: 9555, targetPort: 'metrics', protocol: 'TCP' },
    ]);
    expect(worker.ports).toEqual([{ name: 'metrics', containerPort: 9555, protocol: 'TCP' }]);
    expect(env(worker, 'PANTHEON_METRICS_PORT')?.value).toBe('9555');
    expect(env(worker, 'PANTHEON_METRICS_HOST')?.value).toBe('0.0.0.0');
  });

  it('takes every credential from a Secret the team made: Temporal API key or mTLS, Qdrant API key, Ray token', () => {
    const objects = render(
      ...['--set', 'temporal.apiKeySecret.name=temporal-cloud'],
      ...['--set', 'temporal.mtlsSecret.name=temporal-mtls', '--set', 'temporal.mtlsSecret.hasCa=true'],
      ...['--set', 'qdrant.apiKeySecret.name=qdrant'],
      ...['--set', 'rayCluster.authTokenSecret.name=ray-token'],
    );
    expect(objects.some((o) => o.kind === 'Secret')).toBe(false);
    const worker = workerContainer(objects);
    expect(env(worker, 'TEMPORAL_API_KEY')?.valueFrom).toEqual({
      secretKeyRef: { name: 'temporal-cloud', key: 'api-key' },
    });
    expect(env(worker, 'QDRANT_API_KEY')?.valueFrom).toEqual({
      secretKeyRef: { name: 'qdrant', key: 'api-key' },
    });
    expect(env(worker, 'RAY_AUTH_MODE')?.value).toBe('token');
    expect(env(worker, 'RAY_AUTH_TOKEN')?.valueFrom).toEqual({
      secretKeyRef: { name: 'ray-token', key: 'token' },
    });
    expect(env(worker, 'TEMPORAL_TLS_CLIENT_CERT_PATH')?.value).toBe('/etc/pantheon/temporal-tls/tls.crt');
    expect(env(worker, 'TEMPORAL_TLS_SERVER_CA_CERT_PATH')?.value).toBe('/etc/pantheon/temporal-tls/ca.crt');
    const deployment = one(objects, 'Deployment') as unknown as {
      spec: { template: { spec: { volumes: Array<{ name: string; secret?: { secretName: string } }> } } };
    };
    expect(deployment.spec.template.spec.volumes).toContainEqual({
      name: 'temporal-tls',
      secret: { secretName: 'temporal-mtls' },
    });
    // Every Ray container (head and each worker group) presents the same token.
    const rayCluster = JSON.stringify(one(objects, 'RayCluster'));
    expect(rayCluster.match(/"name":"RAY_AUTH_TOKEN"/g)).toHaveLength(2);
  });

  it.each([
    [
      'a node group that is not kuberay',
      ['--set-file', `nodeGroupsFile=${path.join(REPO_ROOT, 'config', 'node-groups.json')}`],
      'node group "cpu" has provider "local": on Kubernetes every node group must use the kuberay provider',
    ],
    [
      'a node-group file that is not JSON of that shape',
      ['--set', 'nodeGroupsFile=nope'],
      'must be an object with a list "groups"',
    ],
    ['no image', ['--set', 'image.repository='], 'image.repository is required'],
  ])('refuses %s, naming it', (_what, args, message) => {
    const result = helm(['template', RELEASE, CHART, ...REQUIRED, ...args]);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(message);
  });

  it("checks node groups in the values against the worker's own schema (values.schema.json is generated from it)", () => {
    expect(JSON.parse(fs.readFileSync(CHART_VALUES_SCHEMA_FILE, 'utf8'))).toEqual(chartValuesSchema());
    const values = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-values-')), 'values.json');
    const group = { name: 'cpu', provider: 'kuberay', minNodes: 0, maxNodes: 2, costPerNodeHour: 0 };
    fs.writeFileSync(
      values,
      JSON.stringify({ nodeGroups: { groups: [{ ...group, node: { cpus: 2, memoryMb: 1024, gpu: 1 } }] } }),
    );
    const result = helm(['template', RELEASE, CHART, ...REQUIRED, '-f', values]);
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain(
      "at '/nodeGroups/groups/0/node': additional properties 'gpu' not allowed",
    );
  });

  it('renders core objects that pass the Kubernetes 1.34 schemas in strict mode, offline', () => {
    const objects = render(
      '--set-file',
      `nodeGroupsFile=${FIXTURE_GROUPS}`,
      ...['--set', 'temporal.mtlsSecret.name=temporal-mtls', '--set', 'qdrant.apiKeySecret.name=qdrant'],
    ).filter((o) => o.kind !== 'RayCluster');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pantheon-validate-'));
    const files = objects.map((o, i) => {
      const file = path.join(dir, `${i}-${o.kind}.json`);
      fs.writeFileSync(file, JSON.stringify(o));
      return file;
    });
    const result = spawnSync(
      path.join(REPO_ROOT, '.venv', 'bin', 'kubernetes-validate'),
      ['--strict', '--kubernetes-version', '1.34.0', ...files],
      { encoding: 'utf8', env: { PATH: process.env.PATH, HOME: dir } },
    );
    expect(result.stdout + result.stderr).not.toMatch(/ERROR|WARN/);
    expect(result.stdout.match(/^INFO .* passed for resource /gm) ?? []).toHaveLength(objects.length);
    expect(result.status).toBe(0);
  });
});

describe('the chart on the real test API server', () => {
  let server: KubeTestServer;
  let admin: KubeConfig;

  beforeAll(async () => {
    server = await kubeTestServer();
    admin = kubeConfigOf(server, 'admin');
  });

  it("its RayCluster is valid for KubeRay's CRD and stored as rendered (nothing pruned); its RBAC lets the provider scale it, and nothing more", async () => {
    const release = `chart-${process.pid}`;
    const result = helm([
      'template',
      release,
      CHART,
      '--namespace',
      NAMESPACE,
      ...REQUIRED,
      '--set-file',
      `nodeGroupsFile=${FIXTURE_GROUPS}`,
    ]);
    expect(result.status).toBe(0);
    const objects = parseManifests(result.stdout);
    const rendered = one(objects, 'RayCluster');
    const api = admin.makeApiClient(CustomObjectsApi);
    await api.createNamespacedCustomObject({ ...RAY_CLUSTERS, namespace: NAMESPACE, body: rendered });
    const stored = await readRayCluster(admin, NAMESPACE, rendered.metadata.name);
    // Everything rendered is kept (a misspelt field would be pruned silently); the server adds defaults.
    expect(stored).toMatchObject(rendered);
    expect(stored.spec.workerGroupSpecs.map((g) => g.numOfHosts)).toEqual([1, 1]);

    // The chart's Role and RoleBinding in force, the provider authenticates as the chart's service account.
    server.setRbac(
      objects.filter((o) => o.kind === 'Role' || o.kind === 'RoleBinding') as unknown as RbacObject[],
    );
    const serviceAccount = one(objects, 'ServiceAccount').metadata.name;
    const kubeConfig = inClusterKubeConfig(
      server,
      server.mintServiceAccountToken(NAMESPACE, serviceAccount),
      NAMESPACE,
    );
    const pods = await startPodsStandIn({ namespace: NAMESPACE, clusterName: rendered.metadata.name });
    try {
      const groups = loadNodeGroups(FIXTURE_GROUPS).groups;
      const provider = new KubeRayNodeProvider({
        kubeConfig,
        namespace: NAMESPACE,
        clusterName: rendered.metadata.name,
        podsKubeConfig: pods.kubeConfig,
      });
      const cpu = groups[0] as NodeGroup;
      await provider.addNodes(cpu, 2);
      expect(
        (await readRayCluster(admin, NAMESPACE, rendered.metadata.name)).spec.workerGroupSpecs[0],
      ).toMatchObject({
        replicas: 3,
      });

      // The Role names its RayCluster: another one in the same namespace is out of reach.
      const other = `${rendered.metadata.name}-other`;
      await api.createNamespacedCustomObject({
        ...RAY_CLUSTERS,
        namespace: NAMESPACE,
        body: { ...rendered, metadata: { ...rendered.metadata, name: other } },
      });
      const elsewhere = new KubeRayNodeProvider({
        kubeConfig,
        namespace: NAMESPACE,
        clusterName: other,
        podsKubeConfig: pods.kubeConfig,
      });
      await expect(elsewhere.addNodes(cpu, 1)).rejects.toThrow(
        `HTTP 403 Forbidden: rayclusters.ray.io "${other}" is forbidden: User "system:serviceaccount:${NAMESPACE}:${serviceAccount}" cannot get resource "rayclusters"`,
      );
    } finally {
      await pods.close();
      server.setRbac([]);
    }
  });
});
