/**
 * Checks on the free-form JSON a step carries (its `args` and `kwargs`) that
 * zod's `unknown` does not make: how deep it nests, that every `$step`
 * reference has the one shape the engine resolves, and that no object key is
 * one JavaScript would not keep as data. Iterative, so no input can exhaust
 * the stack of the workflow that checks it.
 */
import type { Issue } from '../issues';

/** Deeper values are refused: nothing a task needs nests this far, and every walk over it stays cheap. */
export const MAX_VALUE_DEPTH = 32;

/** Keys an object literal cannot hold as plain data (`__proto__` sets the prototype instead). */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__']);

/** Is `value` meant as a step reference (an object with a `$step` key)? */
/**
 * The part of a value at a dotted path (`$step` paths, blob references' paths); only the value's
 * own data, never what objects inherit. Undefined where the path leads nowhere.
 */
export function valueAtPath(value: unknown, path: string | undefined): unknown {
  let current = value;
  for (const part of (path ?? '').split('.').filter(Boolean)) {
    if (current === null || typeof current !== 'object' || !Object.hasOwn(current, part)) return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

export function looksLikeStepRef(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === 'object' && value !== null && !Array.isArray(value) && Object.hasOwn(value, '$step')
  );
}

/** Why a `$step` object is not a valid reference, or null when it is. */
export function stepRefProblem(value: Record<string, unknown>): string | null {
  const extra = Object.keys(value).filter((k) => k !== '$step' && k !== 'path');
  if (typeof value.$step !== 'string' || value.$step.length === 0)
    return 'a step reference names its step as a string: {"$step": "<step id>"}';
  if (value.path !== undefined && (typeof value.path !== 'string' || !/^[^.]+(\.[^.]+)*$/.test(value.path)))
    return 'a step reference\'s "path" is a dotted string such as "a.b"';
  if (extra.length > 0) return `a step reference has only "$step" and "path" (found ${extra.join(', ')})`;
  return null;
}

function child(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return path === '' ? key : `${path}.${key}`;
}

/**
 * Every problem of a JSON value at `path` (e.g. `steps[2].args`; '' for a whole input). Run on the raw
 * input, before zod: zod rebuilds objects, and a `__proto__` key would be gone without a word.
 */
export function jsonValueIssues(value: unknown, path: string, maxDepth = MAX_VALUE_DEPTH): Issue[] {
  const issues: Issue[] = [];
  const stack: Array<{ value: unknown; path: string; depth: number }> = [{ value, path, depth: 0 }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    if (item.depth > maxDepth) {
      issues.push({ path: item.path || '(input)', message: `nests deeper than ${maxDepth} levels` });
      continue;
    }
    const v = item.value;
    if (typeof v === 'number' && !Number.isFinite(v)) {
      issues.push({
        path: item.path || '(input)',
        message: 'must be a finite number (JSON has no NaN or Infinity)',
      });
      continue;
    }
    if (typeof v !== 'object' || v === null) continue;
    if (Array.isArray(v)) {
      v.forEach((inner, i) => stack.push({ value: inner, path: child(item.path, i), depth: item.depth + 1 }));
      continue;
    }
    if (looksLikeStepRef(v)) {
      const problem = stepRefProblem(v);
      if (problem) issues.push({ path: item.path || '(input)', message: problem });
      continue;
    }
    for (const key of Object.keys(v)) {
      if (FORBIDDEN_KEYS.has(key)) {
        issues.push({ path: child(item.path, key), message: `an object key "${key}" is not kept as data` });
        continue;
      }
      stack.push({
        value: (v as Record<string, unknown>)[key],
        path: child(item.path, key),
        depth: item.depth + 1,
      });
    }
  }
  return issues;
}
