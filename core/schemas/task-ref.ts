/**
 * Task references: `package.module:function`. A step may name only a public
 * function defined in an allowed module. This side (the worker) checks what it
 * can without Python: the form (every segment starts with a letter, so no
 * dunder and no `_private` name or module) and its own allowlist. The Ray side
 * checks the same rule independently, from its own allowlist, down to the
 * function's definition in the module (ray-tasks/pantheon_runtime/task_refs.py);
 * test/unit/task-ref-parity.test.ts keeps the two sides' forms and defaults equal.
 */
import { AGENT_HOST_TASK } from '../agent-host';

const SEGMENT = '[A-Za-z]\\w*';
export const TASK_REF_PATTERN = new RegExp(`^${SEGMENT}(\\.${SEGMENT})*:${SEGMENT}$`);
/** An allowlist entry: a package or a module, public. */
export const MODULE_NAME_PATTERN = new RegExp(`^${SEGMENT}(\\.${SEGMENT})*$`);
export const TASK_REF_FORM = 'package.module:function with public names (no segment may start with "_")';

/** What a worker allows when its operator set nothing: the example agents. */
export const DEFAULT_ALLOWED_TASK_MODULES = ['pantheon_tasks.examples'];
/** Added on the local stack (a worker whose Ray is on loopback): the test kit writes files. */
export const LOCAL_STACK_TASK_MODULES = ['pantheon_tasks.testkit'];

/** The default allowlist for a worker whose Ray cluster is local (loopback) or not. */
export function defaultAllowedTaskModules(localRay: boolean): string[] {
  return localRay
    ? [...DEFAULT_ALLOWED_TASK_MODULES, ...LOCAL_STACK_TASK_MODULES]
    : [...DEFAULT_ALLOWED_TASK_MODULES];
}

/** Returns why `ref` is refused, or undefined when it is allowed. */
export function refuseTaskRef(ref: string, allowedModules: readonly string[]): string | undefined {
  if (!TASK_REF_PATTERN.test(ref)) return `task '${ref}' is not of the form ${TASK_REF_FORM}`;
  // The orchestrator's own entry point for agent steps; planning refuses it as a step's own task.
  if (ref === AGENT_HOST_TASK) return undefined;
  const module = ref.split(':')[0] ?? '';
  const allowed = allowedModules.some((p) => module === p || module.startsWith(`${p}.`));
  return allowed ? undefined : `task '${ref}' is outside the allowed modules (${allowedModules.join(', ')})`;
}
