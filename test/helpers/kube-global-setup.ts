/**
 * The `kube` jest project runs against the real Kubernetes test API server
 * (stack/kube-test-server.ts) and renders the chart with helm. Both are built
 * here, once per machine (the first time takes minutes: the API server ~8, helm
 * ~5; later runs find the cached binaries). A server already running
 * (`npm run k8s:up`) is reused and left running; otherwise it is started here
 * and stopped by the teardown.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ensureGoTool, HELM } from '../../stack/go-tools';
import { kubeStateDir, runningKubeTestServer, startKubeTestServer } from '../../stack/kube-test-server';

export const KUBE_STARTED_MARKER = 'started-by-tests';

export default async function kubeGlobalSetup(): Promise<void> {
  const dir = kubeStateDir();
  fs.mkdirSync(dir, { recursive: true });
  const marker = path.join(dir, KUBE_STARTED_MARKER);
  const log = (message: string) => process.stderr.write(`\n[test] ${message}`);
  const started = Date.now();
  // One build at a time: on two cores a second compiler only slows the first.
  process.env.PANTHEON_HELM = await ensureGoTool(HELM, log);
  if (!(await runningKubeTestServer(dir))) fs.writeFileSync(marker, String(process.pid));
  try {
    await startKubeTestServer(dir);
  } catch (error) {
    fs.rmSync(marker, { force: true });
    throw error;
  }
  process.env.PANTHEON_KUBE_TEST_DIR = dir;
  log(`Kubernetes test API server and helm ready in ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
}
