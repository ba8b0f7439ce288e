/**
 * Task references: `package.module:function`, resolved on the Ray side, and
 * only from allowed packages. The same rule is enforced again in Python.
 */
export const TASK_REF_PATTERN = /^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$/;

/** The project's own task packages: what a fresh install allows. */
export const DEFAULT_ALLOWED_TASK_PACKAGES = ['pantheon_tasks'];

/** Returns why `ref` is refused, or undefined when it is allowed. */
export function refuseTaskRef(ref: string, allowedPackages: readonly string[]): string | undefined {
  if (!TASK_REF_PATTERN.test(ref)) return `task '${ref}' is not of the form package.module:function`;
  const module = ref.split(':')[0] ?? '';
  const allowed = allowedPackages.some((p) => module === p || module.startsWith(`${p}.`));
  return allowed
    ? undefined
    : `task '${ref}' is outside the allowed packages (${allowedPackages.join(', ')})`;
}
