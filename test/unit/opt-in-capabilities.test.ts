/**
 * Opt-in capabilities and explicit environments: job mode is off unless the
 * operator lists entrypoints, the test kit is allowed by default only on the
 * local stack, and every process the project starts gets an environment named
 * variable by variable, never the launcher's whole one.
 */
import { entrypointAllowed, refuseJob, type JobPolicy } from '../../core/schemas/job-policy';
import { planSteps, type PlanContext } from '../../core/step-plan';
import { stepSpecSchema } from '../../core/schemas/pipeline-spec';
import { nodeGroupSchema } from '../../core/schemas/node-groups';
import { loadStackConfig, rayProcessEnv } from '../../stack/config';
import { explicitEnv } from '../../stack/processes';
import { ConfigError, isLoopbackAddress, loadWorkerConfig } from '../../workers/config';

const policy: JobPolicy = {
  entrypoints: ['python -m pantheon_tasks\\.train( --epochs [0-9]+)?', 'echo [a-z]+'],
  runtimeEnvKeys: ['env_vars'],
};

describe('job policy', () => {
  test('without a policy every job is refused, saying how to enable job mode', () => {
    expect(refuseJob({ entrypoint: 'echo hi' }, null, 'steps[0].job')).toEqual({
      path: 'steps[0].job',
      message: expect.stringMatching(/job mode is off: .*PANTHEON_JOB_ENTRYPOINTS/),
    });
  });

  test('an entrypoint must match a listed pattern in full', () => {
    expect(entrypointAllowed('echo hi', policy)).toBe(true);
    expect(entrypointAllowed('python -m pantheon_tasks.train --epochs 3', policy)).toBe(true);
    for (const entrypoint of [
      'echo hi; env',
      'echo hi && curl x',
      'echo HI',
      'env',
      'xecho hi',
      'echo hi\nenv',
    ])
      expect(refuseJob({ entrypoint }, policy, 'steps[1].job')).toEqual({
        path: 'steps[1].job.entrypoint',
        message: expect.stringMatching(/matches none of the entrypoints allowed by PANTHEON_JOB_ENTRYPOINTS/),
      });
  });

  test('runtime_env fields beyond the policy are refused by name', () => {
    expect(
      refuseJob({ entrypoint: 'echo hi', runtimeEnv: { env_vars: { A: '1' } } }, policy, 'job'),
    ).toBeUndefined();
    expect(
      refuseJob({ entrypoint: 'echo hi', runtimeEnv: { working_dir: '/tmp/x' } }, policy, 'job'),
    ).toEqual({
      path: 'job.runtimeEnv.working_dir',
      message: expect.stringMatching(/not allowed \(allowed: env_vars/),
    });
    expect(refuseJob({ entrypoint: 'echo hi', runtimeEnv: { pip: ['evil'] } }, policy, 'job')?.path).toBe(
      'job.runtimeEnv.pip',
    );
  });

  test('planning refuses a job step by field, before anything is scheduled', () => {
    const context: PlanContext = {
      nodeGroups: [
        nodeGroupSchema.parse({
          name: 'cpu',
          node: { cpus: 2, memoryMb: 2048 },
          minNodes: 1,
          maxNodes: 2,
          costPerNodeHour: 1,
        }),
      ],
      allowedTaskPackages: ['pantheon_tasks.testkit'],
      jobPolicy: null,
    };
    const step = stepSpecSchema.parse({ id: 'j', job: { entrypoint: 'echo hi' } });
    expect(planSteps({ steps: [step] }, context)).toEqual({
      ok: false,
      issues: [{ path: 'steps[0].job', message: expect.stringMatching(/job mode is off/) }],
    });
    expect(planSteps({ steps: [step] }, { ...context, jobPolicy: policy })).toMatchObject({ ok: true });
    const other = stepSpecSchema.parse({ id: 'j', job: { entrypoint: 'env' } });
    expect(planSteps({ steps: [other] }, { ...context, jobPolicy: policy })).toMatchObject({
      ok: false,
      issues: [{ path: 'steps[0].job.entrypoint' }],
    });
  });
});

describe('worker configuration', () => {
  test('job mode is off by default and on with a list of entrypoints', () => {
    expect(loadWorkerConfig({}).jobPolicy).toBeNull();
    expect(loadWorkerConfig({ PANTHEON_JOB_ENTRYPOINTS: '["echo [a-z]+"]' }).jobPolicy).toEqual({
      entrypoints: ['echo [a-z]+'],
      runtimeEnvKeys: ['env_vars'],
    });
    expect(
      loadWorkerConfig({
        PANTHEON_JOB_ENTRYPOINTS: '["x"]',
        PANTHEON_JOB_RUNTIME_ENV_KEYS: 'env_vars,working_dir',
      }).jobPolicy?.runtimeEnvKeys,
    ).toEqual(['env_vars', 'working_dir']);
  });

  test('a malformed job policy stops the worker with the variable named', () => {
    expect(() => loadWorkerConfig({ PANTHEON_JOB_ENTRYPOINTS: 'echo' })).toThrow(ConfigError);
    expect(() => loadWorkerConfig({ PANTHEON_JOB_ENTRYPOINTS: '[]' })).toThrow(/PANTHEON_JOB_ENTRYPOINTS/);
    expect(() => loadWorkerConfig({ PANTHEON_JOB_ENTRYPOINTS: '["(unclosed"]' })).toThrow(
      /regular expression/,
    );
  });

  test('the test kit is on the default allowlist only when Ray is on loopback', () => {
    // A remote Ray is reached with its token (workers/config.ts refuses one without).
    const remote = { RAY_AUTH_MODE: 'token', RAY_AUTH_TOKEN: 'a-token' };
    expect(loadWorkerConfig({ RAY_ADDRESS: '127.0.0.1:6379' }).allowedTaskPackages).toEqual([
      'pantheon_tasks.examples',
      'pantheon_tasks.testkit',
    ]);
    expect(
      loadWorkerConfig({ ...remote, RAY_ADDRESS: 'ray-head.prod.svc:6379' }).allowedTaskPackages,
    ).toEqual(['pantheon_tasks.examples']);
    expect(
      loadWorkerConfig({
        ...remote,
        RAY_ADDRESS: 'ray-head:6379',
        PANTHEON_ALLOWED_TASK_PACKAGES: 'mypkg.tasks',
      }).allowedTaskPackages,
    ).toEqual(['mypkg.tasks']);
    expect(() => loadWorkerConfig({ PANTHEON_ALLOWED_TASK_PACKAGES: 'pantheon_tasks._private' })).toThrow(
      /PANTHEON_ALLOWED_TASK_PACKAGES/,
    );
  });

  test.each([
    ['127.0.0.1:6379', true],
    ['127.4.5.6:1', true],
    ['localhost:6379', true],
    ['[::1]:6379', true],
    ['ray://127.0.0.1:10001', true],
    ['10.0.0.4:6379', false],
    ['ray-head:6379', false],
    ['127.0.0.1.example.com:6379', false],
  ])('%s is loopback: %s', (address, loopback) => {
    expect(isLoopbackAddress(address)).toBe(loopback);
  });
});

describe('explicit environments', () => {
  const launcher = {
    PATH: '/usr/bin:/bin',
    HOME: '/home/op',
    LAUNCHER_ONLY_SECRET: 'hunter2',
    AWS_SECRET_ACCESS_KEY: 'x',
    TEMPORAL_API_KEY: 'y',
    PANTHEON_ALLOWED_TASK_PACKAGES: 'pantheon_tasks.examples,mypkg',
  };

  test('only the basics and the named variables pass', () => {
    expect(explicitEnv({ A: '1', B: undefined }, launcher)).toEqual({
      PATH: '/usr/bin:/bin',
      HOME: '/home/op',
      A: '1',
    });
  });

  test("Ray processes get the stack's settings, never the launcher's secrets", () => {
    const env = rayProcessEnv(loadStackConfig({}), launcher);
    expect(env).not.toHaveProperty('LAUNCHER_ONLY_SECRET');
    expect(env).not.toHaveProperty('AWS_SECRET_ACCESS_KEY');
    expect(env).not.toHaveProperty('TEMPORAL_API_KEY');
    expect(env).toMatchObject({
      PATH: '/usr/bin:/bin',
      RAY_task_oom_retries: '0',
      PANTHEON_ALLOWED_TASK_PACKAGES: 'pantheon_tasks.examples,mypkg',
    });
    expect(rayProcessEnv(loadStackConfig({}), { PATH: '/bin' }).PANTHEON_ALLOWED_TASK_PACKAGES).toBe(
      'pantheon_tasks.examples,pantheon_tasks.testkit',
    );
  });

  test('an S3 blob store’s credentials reach Ray only when named by the project’s own variables', () => {
    const s3 = {
      PANTHEON_S3_ENDPOINT: 'http://127.0.0.1:9000',
      PANTHEON_S3_ACCESS_KEY_ID: 'stack-key',
      PANTHEON_S3_SECRET_ACCESS_KEY: 'stack-secret',
    };
    const env = rayProcessEnv(loadStackConfig({}), { ...launcher, ...s3 });
    expect(env).toMatchObject({
      AWS_ENDPOINT_URL_S3: 'http://127.0.0.1:9000',
      AWS_ACCESS_KEY_ID: 'stack-key',
      AWS_SECRET_ACCESS_KEY: 'stack-secret',
    });
    expect(env).not.toHaveProperty('PANTHEON_S3_SECRET_ACCESS_KEY');
  });
});
