/**
 * Pure DAG planning over a pipeline spec: validation (duplicate ids, unknown
 * dependencies, cycles), which steps are ready, which can never run, and the
 * substitution of `{"$step": id}` references by outputs. No I/O, deterministic:
 * safe in workflow code.
 */
import { z } from 'zod';
import { isBlobRef } from './schemas/blob-ref';
import { issuesOf, type Issue } from './issues';
import { jsonValueIssues, looksLikeStepRef, MAX_VALUE_DEPTH, valueAtPath } from './schemas/json-values';
import {
  pipelineSpecSchema,
  SPEC_LIMITS,
  stepRefSchema,
  type PipelineSpec,
  type StepSpec,
  type StepStatus,
} from './schemas/pipeline-spec';

/** Validation has refused every `$step` object of another shape before anything resolves one. */
function isStepRef(value: unknown): value is z.infer<typeof stepRefSchema> {
  return looksLikeStepRef(value);
}

/** Every `{"$step": id}` inside a value, with its path. */
export function findStepRefs(value: unknown, path: string): { path: string; step: string }[] {
  if (isStepRef(value)) return [{ path, step: String(value.$step) }];
  if (Array.isArray(value)) return value.flatMap((v, i) => findStepRefs(v, `${path}[${i}]`));
  if (typeof value === 'object' && value !== null)
    return Object.entries(value).flatMap(([k, v]) => findStepRefs(v, `${path}.${k}`));
  return [];
}

/** Every `$step` reference among a step's inputs: its args, kwargs and a map's list. */
export function stepInputRefs(step: StepSpec): { path: string; step: string }[] {
  return [
    ...findStepRefs(step.args, 'args'),
    ...findStepRefs(step.kwargs, 'kwargs'),
    ...(step.map ? findStepRefs(step.map.over, 'map.over') : []),
  ];
}

/** A step's dependencies: its `dependsOn` plus every step its inputs reference. */
export function dependenciesOf(step: StepSpec): string[] {
  return [...new Set([...step.dependsOn, ...stepInputRefs(step).map((r) => r.step)])];
}

export function validateDag(steps: readonly StepSpec[]): Issue[] {
  const issues: Issue[] = [];
  const index = new Map<string, number>();
  steps.forEach((step, i) => {
    if (index.has(step.id))
      issues.push({ path: `steps[${i}].id`, message: `duplicate step id "${step.id}"` });
    else index.set(step.id, i);
  });
  steps.forEach((step, i) => {
    step.dependsOn.forEach((dep, j) => {
      if (dep === step.id)
        issues.push({ path: `steps[${i}].dependsOn[${j}]`, message: `step "${dep}" depends on itself` });
      else if (!index.has(dep))
        issues.push({ path: `steps[${i}].dependsOn[${j}]`, message: `unknown step "${dep}"` });
    });
    for (const ref of stepInputRefs(step)) {
      if (!index.has(ref.step))
        issues.push({ path: `steps[${i}].${ref.path}`, message: `unknown step "${ref.step}"` });
      else if (ref.step === step.id)
        issues.push({ path: `steps[${i}].${ref.path}`, message: `step "${ref.step}" uses its own output` });
    }
  });
  if (issues.length > 0) return issues;
  const cycle = findCycle(steps);
  if (cycle) {
    const first = index.get(cycle[0] ?? '') ?? 0;
    issues.push({ path: `steps[${first}].dependsOn`, message: `dependency cycle: ${cycle.join(' -> ')}` });
  }
  return issues;
}

/**
 * A cycle as a list of step ids (first repeated at the end), or undefined. Iterative: a chain of
 * any length is walked without growing the call stack.
 */
export function findCycle(steps: readonly StepSpec[]): string[] | undefined {
  const deps = new Map(steps.map((s) => [s.id, dependenciesOf(s)]));
  const state = new Map<string, 'visiting' | 'done'>();
  for (const root of steps) {
    if (state.has(root.id)) continue;
    // Each frame: a step on the current path and the index of the next dependency to visit.
    const path: Array<{ id: string; next: number }> = [{ id: root.id, next: 0 }];
    state.set(root.id, 'visiting');
    while (path.length > 0) {
      const frame = path[path.length - 1]!;
      const dep = (deps.get(frame.id) ?? [])[frame.next++];
      if (dep === undefined) {
        state.set(frame.id, 'done');
        path.pop();
      } else if (state.get(dep) === 'visiting') {
        const ids = path.map((f) => f.id);
        return [...ids.slice(ids.indexOf(dep)), dep];
      } else if (!state.has(dep) && deps.has(dep)) {
        state.set(dep, 'visiting');
        path.push({ id: dep, next: 0 });
      }
    }
  }
  return undefined;
}

export type ParsedSpec = { ok: true; spec: PipelineSpec } | { ok: false; issues: Issue[] };

/**
 * Issues of a raw input that zod cannot see once it has parsed it: the input's size, nesting,
 * `__proto__` keys (zod would drop them without a word) and the shape of every `$step` reference.
 */
export function rawInputIssues(raw: unknown, maxBytes: number = SPEC_LIMITS.maxSpecBytes): Issue[] {
  let bytes: number;
  try {
    bytes = JSON.stringify(raw)?.length ?? 0;
  } catch {
    return [{ path: '(input)', message: 'must be plain JSON' }];
  }
  if (bytes > maxBytes)
    return [{ path: '(input)', message: `takes ${bytes} bytes as JSON, more than ${maxBytes}` }];
  // The spec's own levels (steps[i].args) on top of what a step's values may nest.
  return jsonValueIssues(raw, '', MAX_VALUE_DEPTH + 4);
}

/** Validates a raw pipeline input: its raw form, its shape (zod), then the graph. */
export function parsePipelineSpec(raw: unknown): ParsedSpec {
  const rawIssues = rawInputIssues(raw);
  if (rawIssues.length > 0) return { ok: false, issues: rawIssues };
  const parsed = pipelineSpecSchema.safeParse(raw);
  if (!parsed.success)
    return {
      ok: false,
      issues: issuesOf(parsed.error),
    };
  const issues = validateDag(parsed.data.steps);
  return issues.length > 0 ? { ok: false, issues } : { ok: true, spec: parsed.data };
}

/** A dependency in one of these can never succeed: its dependants are blocked. */
export const FINISHED_BAD: ReadonlySet<StepStatus> = new Set(['failed', 'skipped', 'cancelled']);

/** Pending steps whose dependencies have all succeeded. */
export function readySteps(
  steps: readonly StepSpec[],
  status: Readonly<Record<string, StepStatus>>,
): StepSpec[] {
  return steps.filter(
    (s) => status[s.id] === 'pending' && dependenciesOf(s).every((d) => status[d] === 'succeeded'),
  );
}

/** Pending steps that can never run because a dependency failed, was skipped or cancelled. */
export function blockedSteps(
  steps: readonly StepSpec[],
  status: Readonly<Record<string, StepStatus>>,
): StepSpec[] {
  return steps.filter(
    (s) =>
      status[s.id] === 'pending' && dependenciesOf(s).some((d) => FINISHED_BAD.has(status[d] ?? 'pending')),
  );
}

/**
 * Replaces every `{"$step": id, "path"?}` by that step's output (or the part of it at `path`). An
 * output kept in the blob store is a reference: it is passed on as one (with the path, which the
 * Ray side applies when it resolves it), so large data never passes through the workflow.
 */
export function resolveStepRefs(value: unknown, outputs: Readonly<Record<string, unknown>>): unknown {
  if (isStepRef(value)) {
    if (!Object.hasOwn(outputs, value.$step)) return undefined;
    const output = outputs[value.$step];
    if (value.path && isBlobRef(output)) return { ...output, path: value.path };
    return valueAtPath(output, value.path);
  }
  if (Array.isArray(value)) return value.map((v) => resolveStepRefs(v, outputs));
  if (typeof value === 'object' && value !== null)
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveStepRefs(v, outputs)]));
  return value;
}
