/**
 * Pure DAG planning over a pipeline spec: validation (duplicate ids, unknown
 * dependencies, cycles), which steps are ready, which can never run, and the
 * substitution of `{"$step": id}` references by outputs. No I/O, deterministic:
 * safe in workflow code.
 */
import { z } from 'zod';
import { issuesOf, type Issue } from './issues';
import {
  pipelineSpecSchema,
  stepRefSchema,
  type PipelineSpec,
  type StepSpec,
  type StepStatus,
} from './schemas/pipeline-spec';

function isStepRef(value: unknown): value is z.infer<typeof stepRefSchema> {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && '$step' in value;
}

/** Every `{"$step": id}` inside a value, with its path. */
export function findStepRefs(value: unknown, path: string): { path: string; step: string }[] {
  if (isStepRef(value)) return [{ path, step: String(value.$step) }];
  if (Array.isArray(value)) return value.flatMap((v, i) => findStepRefs(v, `${path}[${i}]`));
  if (typeof value === 'object' && value !== null)
    return Object.entries(value).flatMap(([k, v]) => findStepRefs(v, `${path}.${k}`));
  return [];
}

/** A step's dependencies: its `dependsOn` plus every step its inputs reference. */
export function dependenciesOf(step: StepSpec): string[] {
  const refs = [...findStepRefs(step.args, 'args'), ...findStepRefs(step.kwargs, 'kwargs')].map(
    (r) => r.step,
  );
  return [...new Set([...step.dependsOn, ...refs])];
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
    for (const ref of [...findStepRefs(step.args, 'args'), ...findStepRefs(step.kwargs, 'kwargs')]) {
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

/** A cycle as a list of step ids (first repeated at the end), or undefined. */
export function findCycle(steps: readonly StepSpec[]): string[] | undefined {
  const deps = new Map(steps.map((s) => [s.id, dependenciesOf(s)]));
  const state = new Map<string, 'visiting' | 'done'>();
  const stack: string[] = [];
  const visit = (id: string): string[] | undefined => {
    if (state.get(id) === 'done') return undefined;
    if (state.get(id) === 'visiting') return [...stack.slice(stack.indexOf(id)), id];
    state.set(id, 'visiting');
    stack.push(id);
    for (const dep of deps.get(id) ?? []) {
      const found = visit(dep);
      if (found) return found;
    }
    stack.pop();
    state.set(id, 'done');
    return undefined;
  };
  for (const step of steps) {
    const found = visit(step.id);
    if (found) return found;
  }
  return undefined;
}

export type ParsedSpec = { ok: true; spec: PipelineSpec } | { ok: false; issues: Issue[] };

/** Validates a raw pipeline input: shape first (zod), then the graph. */
export function parsePipelineSpec(raw: unknown): ParsedSpec {
  const parsed = pipelineSpecSchema.safeParse(raw);
  if (!parsed.success)
    return {
      ok: false,
      issues: issuesOf(parsed.error),
    };
  const issues = validateDag(parsed.data.steps);
  return issues.length > 0 ? { ok: false, issues } : { ok: true, spec: parsed.data };
}

const FINISHED_BAD: ReadonlySet<StepStatus> = new Set(['failed', 'skipped', 'cancelled']);

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

function pick(value: unknown, path: string | undefined): unknown {
  if (!path) return value;
  let current = value;
  for (const part of path.split('.')) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[part];
  }
  return current;
}

/** Replaces every `{"$step": id, "path"?}` by that step's output (or the part of it at `path`). */
export function resolveStepRefs(value: unknown, outputs: Readonly<Record<string, unknown>>): unknown {
  if (isStepRef(value)) return pick(outputs[value.$step], value.path);
  if (Array.isArray(value)) return value.map((v) => resolveStepRefs(v, outputs));
  if (typeof value === 'object' && value !== null)
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, resolveStepRefs(v, outputs)]));
  return value;
}
