/**
 * The Kubernetes test API server (stack/kube-test-server.ts) for a developer:
 *
 *   tsx scripts/k8s.ts up      build what is missing (first time: minutes), start, print how to connect
 *   tsx scripts/k8s.ts down    stop it and forget its data
 *   tsx scripts/k8s.ts status  whether it runs, and where
 *
 * State lives in <PANTHEON_STATE_DIR>/kube; builds are cached in ~/.cache/pantheon.
 */
import { Command } from 'commander';
import {
  kubeStateDir,
  runningKubeTestServer,
  startKubeTestServer,
  stopKubeTestServer,
} from '../stack/kube-test-server';

const program = new Command('k8s').description(
  'the Kubernetes test API server (CRD-only, with the RayCluster CRD)',
);

program.command('up').action(async () => {
  const server = await startKubeTestServer();
  process.stdout.write(
    `API server: ${server.url}\n` +
      `admin (system:masters): export KUBECONFIG=${server.kubeconfigFile('admin')}\n` +
      `developer (no rights unless granted): ${server.kubeconfigFile('developer')}\n` +
      'It serves CRDs and RayClusters only: no Pods, no KubeRay operator (docs/kubernetes.md).\n',
  );
});

program.command('down').action(async () => {
  await stopKubeTestServer();
  process.stdout.write('stopped\n');
});

program.command('status').action(async () => {
  const server = await runningKubeTestServer();
  process.stdout.write(
    server ? `running at ${server.url} (state: ${server.dir})\n` : `not running (state: ${kubeStateDir()})\n`,
  );
  if (!server) process.exitCode = 3;
});

program.parseAsync().catch((error: unknown) => {
  process.stderr.write(`[k8s] ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
