/**
 * Ray's own unmet demand reaches the observation: a task pinned to a group
 * that has no node waits inside Ray, the bridge's `node_states` reports it
 * with its label selector, and the observe step counts it as backlog of that
 * group. (Steps can end up waiting inside Ray when a node leaves after the
 * worker admitted them; without this the autoscaler would not see them.)
 */
import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { observeGroup } from '../../activities/scaling/observe';
import { readRayClusterState } from '../../activities/scaling/ray-cluster';
import { REPO_ROOT } from '../../stack/config';
import { nodeGroupSchema } from '../../core/schemas/node-groups';
import { startTestEnv, waitUntil, type TestEnv } from '../helpers/test-env';

const GROUP = 'as-nowhere';
const DRIVER = `
import ray, sys, time
ray.init(address=sys.argv[1], logging_level="WARNING", log_to_driver=False)
@ray.remote(num_cpus=1, memory=64 * 1024 * 1024)
def wait():
    return 1
refs = [wait.options(label_selector={"pantheon.io/group": "${GROUP}"}).remote() for _ in range(2)]
print("submitted", flush=True)
time.sleep(600)
`;

let env: TestEnv;
let driver: ChildProcess | undefined;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  driver?.kill('SIGKILL');
  await env?.close();
});

test('steps waiting inside Ray for a node of a group are that group’s backlog', async () => {
  driver = spawn(path.join(REPO_ROOT, '.venv', 'bin', 'python'), ['-c', DRIVER, env.config.ray.address], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const bridge = env.worker!.bridge;
  const state = await waitUntil(
    'Ray to report the two pinned requests as pending',
    async () => {
      const s = await readRayClusterState(bridge);
      const mine = s.pending.filter((p) => p.labels['pantheon.io/group'] === `in(${GROUP})`);
      return mine.reduce((sum, p) => sum + p.count, 0) === 2 ? s : undefined;
    },
    60_000,
    250,
  );
  const group = nodeGroupSchema.parse({
    name: GROUP,
    node: { cpus: 1, memoryMb: 512 },
    minNodes: 0,
    maxNodes: 2,
    costPerNodeHour: 0.1,
  });
  const observed = observeGroup({
    group,
    backlog: { backlogCount: 1, backlogAgeSeconds: 0, addRate: 0, dispatchRate: 0 },
    providerNodes: [],
    ray: state,
  });
  expect(observed.rayPendingSteps).toBe(2);
  expect(observed.observation.backlogCount).toBe(3);
  expect(observed.observation.pendingDemand).toEqual([{ resources: { cpus: 1, memoryMb: 64 }, count: 2 }]);
});
