/**
 * Job mode is an opt-in capability: a Ray job runs a shell command, so a step
 * may name one only when the operator has enabled job mode with a policy that
 * says which entrypoints may run (PANTHEON_JOB_ENTRYPOINTS) and which
 * runtime_env fields a step may set (PANTHEON_JOB_RUNTIME_ENV_KEYS). Checked
 * when the pipeline is planned and again by the job activity. Pure.
 */
import { z } from 'zod';

/** Without a policy from the operator, a step may set only environment variables of its job. */
export const DEFAULT_JOB_RUNTIME_ENV_KEYS = ['env_vars'];

export const jobPolicySchema = z.object({
  /** Regular expressions; an entrypoint must match one of them in full. */
  entrypoints: z
    .array(
      z
        .string()
        .min(1)
        .refine((pattern) => compiles(pattern), 'a valid regular expression'),
    )
    .min(1),
  /** The runtime_env fields a step may set (e.g. env_vars, working_dir). */
  runtimeEnvKeys: z.array(z.string().regex(/^[a-z_]+$/)).default(DEFAULT_JOB_RUNTIME_ENV_KEYS),
});

/** The operator's job policy; null: job mode is off. */
export type JobPolicy = z.infer<typeof jobPolicySchema>;

function compiles(pattern: string): boolean {
  try {
    new RegExp(pattern);
    return true;
  } catch {
    return false;
  }
}

/** Whether `entrypoint` matches one of the policy's patterns in full. */
export function entrypointAllowed(entrypoint: string, policy: JobPolicy): boolean {
  return policy.entrypoints.some((pattern) => new RegExp(`^(?:${pattern})$`).test(entrypoint));
}

/** Why a job is refused, with the field under `at` (e.g. `steps[2].job`); undefined when it may run. */
export function refuseJob(
  job: { entrypoint: string; runtimeEnv?: Record<string, unknown> },
  policy: JobPolicy | null,
  at: string,
): { path: string; message: string } | undefined {
  if (policy === null)
    return {
      path: at,
      message:
        'job mode is off: the operator enables it by listing the entrypoints steps may run in PANTHEON_JOB_ENTRYPOINTS',
    };
  if (!entrypointAllowed(job.entrypoint, policy))
    return {
      path: `${at}.entrypoint`,
      message: `entrypoint ${JSON.stringify(job.entrypoint)} matches none of the entrypoints allowed by PANTHEON_JOB_ENTRYPOINTS`,
    };
  for (const key of Object.keys(job.runtimeEnv ?? {}))
    if (!policy.runtimeEnvKeys.includes(key))
      return {
        path: `${at}.runtimeEnv.${key}`,
        message: `runtime_env field "${key}" is not allowed (allowed: ${policy.runtimeEnvKeys.join(', ') || 'none'}; PANTHEON_JOB_RUNTIME_ENV_KEYS)`,
      };
  return undefined;
}
