/**
 * Four projects: `replay` (recorded histories against today's workflow code),
 * `unit` (pure code, plus adapters that need only their own small server),
 * `kube` (the kuberay provider and the Helm chart against a real Kubernetes
 * API server, stack/kube-test-server.ts) and `integration` (the real local
 * stack: Temporal dev server, Ray head and worker nodes, local Qdrant). The
 * kube and integration projects' global setups start what they need only when
 * one of their tests is selected.
 */
// isolatedModules comes from tsconfig.json: each file is compiled on its own, fast.
const transform = { '^.+\\.ts$': 'ts-jest' };
// @kubernetes/client-node pulls in ESM-only packages that jest 29 cannot load as they are.
const ESM_ONLY_PACKAGES = ['@kubernetes/client-node', 'openid-client', 'oauth4webapi', 'jose'];
const esmAware = {
  transform: { ...transform, '^.+\\.js$': ['ts-jest', { tsconfig: { allowJs: true } }] },
  transformIgnorePatterns: [`/node_modules/(?!(${ESM_ONLY_PACKAGES.join('|')})/)`],
};

module.exports = {
  // Two cores: integration files share one Ray cluster, so they run one at a time.
  maxWorkers: 1,
  // Generous: integration steps wait on real services; unit tests finish long before.
  testTimeout: 180_000,
  reporters: ['default', '<rootDir>/test/helpers/summary-reporter.js'],
  projects: [
    {
      // Replays recorded histories against today's workflow code: no server needed.
      displayName: 'replay',
      testEnvironment: 'node',
      roots: ['<rootDir>/test/replay'],
      testMatch: ['**/*.test.ts'],
      transform,
    },
    {
      displayName: 'unit',
      testEnvironment: 'node',
      roots: ['<rootDir>/test/unit'],
      testMatch: ['**/*.test.ts'],
      ...esmAware,
    },
    {
      // The first run on a machine builds the API server and helm (minutes); later runs reuse them.
      displayName: 'kube',
      testEnvironment: 'node',
      roots: ['<rootDir>/test/kube'],
      testMatch: ['**/*.test.ts'],
      ...esmAware,
      globalSetup: '<rootDir>/test/helpers/kube-global-setup.ts',
      globalTeardown: '<rootDir>/test/helpers/kube-global-teardown.ts',
    },
    {
      displayName: 'integration',
      testEnvironment: 'node',
      roots: ['<rootDir>/test/integration'],
      testMatch: ['**/*.test.ts'],
      ...esmAware,
      globalSetup: '<rootDir>/test/helpers/global-setup.ts',
      globalTeardown: '<rootDir>/test/helpers/global-teardown.ts',
    },
  ],
};
