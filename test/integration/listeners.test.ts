/**
 * Nothing of the local stack is reachable beyond loopback, and Ray wants its
 * token even there (loopback is shared with every user of the host): every
 * listening socket of the stack's processes — Temporal, the memory server, the
 * Ray head and worker nodes with everything they started (GCS, raylets, object
 * managers, workers, dashboard and its agents, metrics
 * export, runtime-env agent), the dispatcher host, and this worker's Ray bridge —
 * is bound to a loopback address (read from /proc, test/helpers/listeners.ts);
 * and Ray's GCS and dashboard refuse a caller without the token. The head
 * serves no Ray Client (`ray://`) unless RAY_CLIENT_SERVER_PORT asks for it.
 */
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isLoopbackHost, rayAuthHeaders } from '../../stack/ray-auth';
import { REPO_ROOT } from '../../stack/config';
import { listenersOf, stackProcessIds } from '../helpers/listeners';
import { startTestEnv, uniqueId, type TestEnv } from '../helpers/test-env';
import { loadStackConfig } from '../../stack/config';

let env: TestEnv;
beforeAll(async () => {
  env = await startTestEnv();
});
afterAll(async () => {
  await env?.close();
});

test('every socket the stack listens on is bound to loopback', async () => {
  // A step first, so that Ray worker processes (which listen too) exist.
  const result = await env.runPipeline({
    name: 'listeners',
    project: uniqueId('listeners'),
    steps: [{ id: 'a', task: 'pantheon_tasks.testkit:echo', args: ['hi'] }],
  });
  expect(result.steps.a?.status).toBe('succeeded');

  const stack = loadStackConfig();
  const listeners = listenersOf(stackProcessIds(stack, [process.pid]));
  const ports = new Set(listeners.map((l) => l.port));
  // The probe sees the stack: its well-known ports are among what it found.
  for (const port of [
    stack.temporal.port,
    stack.temporal.uiPort,
    stack.ray.headPort,
    stack.ray.dashboardPort,
  ])
    expect(ports).toContain(port);
  expect(ports).toContain(stack.qdrant.port);
  expect(listeners.map((l) => l.command)).toEqual(expect.arrayContaining(['raylet', 'gcs_server']));
  expect(listeners.filter((l) => !isLoopbackHost(l.address))).toEqual([]);

  // Nothing of the stack uses Ray Client: its proxy process does not run unless a port is asked for.
  expect(stack.ray.clientServerPort).toBe(0);
  const commandLines = [...stackProcessIds(stack)].map((pid) => {
    try {
      return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ');
    } catch {
      return ''; // exited
    }
  });
  expect(commandLines.some((c) => c.includes('--head'))).toBe(true); // the probe sees the head
  expect(commandLines.filter((c) => c.includes('ray.util.client.server'))).toEqual([]);
});

test("Ray refuses a caller without the stack's token, on gRPC (GCS) and HTTP (dashboard)", async () => {
  const stack = loadStackConfig();
  const version = `${stack.ray.dashboardUrl}/api/version`;
  expect((await fetch(version)).status).toBe(401);
  expect((await fetch(version, { headers: rayAuthHeaders() })).status).toBe(200);

  // One GCS call over plain gRPC, without and then with the token (Ray's own metadata header).
  const probe = `
import grpc, os, sys
token = open(os.environ["RAY_AUTH_TOKEN_PATH"]).read().strip()
for metadata in ((), (("authorization", "Bearer " + token),)):
    with grpc.insecure_channel(sys.argv[1]) as channel:
        try:
            channel.unary_unary("/ray.rpc.NodeInfoGcsService/GetAllNodeInfo")(b"", timeout=30, metadata=metadata)
            print("OK")
        except grpc.RpcError as err:
            print(err.code().name)
`;
  const run = spawnSync(path.join(REPO_ROOT, '.venv', 'bin', 'python'), ['-c', probe, stack.ray.address], {
    encoding: 'utf8',
    env: process.env,
    timeout: 120_000,
  });
  expect(run.stderr).toBe('');
  expect(run.stdout.trim().split('\n')).toEqual(['UNAUTHENTICATED', 'OK']);
});
