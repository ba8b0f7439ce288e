/** Stops the Kubernetes test API server if the kube project's global setup started it. */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { kubeStateDir, stopKubeTestServer } from '../../stack/kube-test-server';
import { KUBE_STARTED_MARKER } from './kube-global-setup';

export default async function kubeGlobalTeardown(): Promise<void> {
  const dir = kubeStateDir();
  const marker = path.join(dir, KUBE_STARTED_MARKER);
  if (!fs.existsSync(marker)) return;
  await stopKubeTestServer(dir);
  fs.rmSync(marker, { force: true });
}
