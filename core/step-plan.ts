/**
 * Placement planning before a pipeline runs: every step's task (or its agent's
 * task) must be allowed and its resources must fit some node group (Ray itself
 * would wait forever on an infeasible request). Pure; workflow-safe.
 */
import type { Issue } from './issues';
import { AGENT_HOST_TASK } from './agent-host';
import { dependenciesOf, findCycle, rawInputIssues } from './dag';
import { issuesOf } from './issues';
import { addStepInputSchema, setStepResourcesInputSchema } from './messages/pipeline';
import { chooseNodeGroup } from './placement';
import type { NodeGroup } from './schemas/node-groups';
import { SPEC_LIMITS, type StepSpec } from './schemas/pipeline-spec';
import type { Resources } from './schemas/resources';
import { refuseJob, type JobPolicy } from './schemas/job-policy';
import { refuseTaskRef } from './schemas/task-ref';

export interface PlanContext {
  nodeGroups: NodeGroup[];
  allowedTaskPackages: string[];
  /**
   * The operator's job policy; null: job mode is off. Absent only in contexts recorded before job
   * mode became opt-in: those replay as they ran (the job activity checks the policy again).
   */
  jobPolicy?: JobPolicy | null;
}

/** What planning needs to know of the agents a spec may name. */
export interface AgentLookup {
  readonly names: string[];
  get(name: string): { task: string; resources: Resources } | undefined;
}

export type StepPlan = { ok: true; groups: Record<string, string> } | { ok: false; issues: Issue[] };

/** The issues of one step; `at` is its path in the spec (e.g. `steps[2]`). */
export function planStep(
  step: StepSpec,
  at: string,
  context: PlanContext,
  agents?: AgentLookup,
): { group?: string; issues: Issue[] } {
  const issues: Issue[] = [];
  let resources = step.resources ?? {};
  if (step.task !== undefined) {
    const refused =
      step.task === AGENT_HOST_TASK
        ? `task '${AGENT_HOST_TASK}' is internal: name an agent instead`
        : refuseTaskRef(step.task, context.allowedTaskPackages);
    if (refused) issues.push({ path: `${at}.task`, message: refused });
  }
  if (step.job !== undefined && context.jobPolicy !== undefined) {
    const refused = refuseJob(step.job, context.jobPolicy, `${at}.job`);
    if (refused) issues.push(refused);
  }
  if (step.agent !== undefined) {
    const agent = agents?.get(step.agent);
    if (!agent) {
      const known = agents?.names.join(', ') || 'none';
      issues.push({ path: `${at}.agent`, message: `unknown agent "${step.agent}" (known: ${known})` });
    } else {
      const refused = refuseTaskRef(agent.task, context.allowedTaskPackages);
      if (refused) issues.push({ path: `${at}.agent`, message: `agent "${step.agent}": ${refused}` });
      resources = { ...agent.resources, ...step.resources };
    }
  }
  const choice = chooseNodeGroup(resources, context.nodeGroups);
  if ('infeasible' in choice) {
    issues.push({ path: `${at}.resources`, message: choice.infeasible });
    return { issues };
  }
  return { group: choice.group, issues };
}

export function planSteps(
  spec: { steps: readonly StepSpec[] },
  context: PlanContext,
  agents?: AgentLookup,
): StepPlan {
  const issues: Issue[] = [];
  const groups: Record<string, string> = {};
  spec.steps.forEach((step, i) => {
    const planned = planStep(step, `steps[${i}]`, context, agents);
    issues.push(...planned.issues);
    if (planned.group !== undefined) groups[step.id] = planned.group;
  });
  return issues.length > 0 ? { ok: false, issues } : { ok: true, groups };
}

/**
 * Why a step may not be added to a running pipeline (the `addStep` update), as issues; none when it
 * may. Checks the raw update first (size, nesting, keys), then its shape, its dependencies, cycles
 * and placement: everything the pipeline would otherwise find out only after work ran.
 */
export function addStepIssues(
  raw: unknown,
  steps: readonly StepSpec[],
  context: PlanContext,
  agents?: AgentLookup,
): { step?: StepSpec; issues: Issue[] } {
  const rawIssues = rawInputIssues(raw, SPEC_LIMITS.maxStepInputBytes * 2);
  if (rawIssues.length > 0) return { issues: rawIssues };
  const parsed = addStepInputSchema.safeParse(raw);
  if (!parsed.success) return { issues: issuesOf(parsed.error) };
  const { step } = parsed.data;
  if (steps.some((s) => s.id === step.id))
    return { issues: [{ path: 'step.id', message: `step "${step.id}" already exists` }] };
  const known = new Set(steps.map((s) => s.id));
  const missing = dependenciesOf(step).filter((d) => !known.has(d));
  if (missing.length > 0)
    return {
      issues: [
        {
          path: 'step.dependsOn',
          message: `unknown step${missing.length > 1 ? 's' : ''} ${missing.map((m) => `"${m}"`).join(', ')}`,
        },
      ],
    };
  if (findCycle([...steps, step]))
    return {
      issues: [{ path: 'step.dependsOn', message: `step "${step.id}" would close a dependency cycle` }],
    };
  const planned = planStep(step, 'step', context, agents);
  return planned.issues.length > 0 ? { issues: planned.issues } : { step, issues: [] };
}

/** Why a step's resources may not change (the `setStepResources` update), as issues; none when they may. */
export function stepResourcesIssues(
  raw: unknown,
  steps: readonly StepSpec[],
  context: PlanContext,
  agents?: AgentLookup,
): { stepId?: string; resources?: Resources; group?: string; issues: Issue[] } {
  const rawIssues = rawInputIssues(raw, SPEC_LIMITS.maxStepInputBytes);
  if (rawIssues.length > 0) return { issues: rawIssues };
  const parsed = setStepResourcesInputSchema.safeParse(raw);
  if (!parsed.success) return { issues: issuesOf(parsed.error) };
  const { stepId, resources } = parsed.data;
  const index = steps.findIndex((s) => s.id === stepId);
  if (index < 0) return { issues: [{ path: 'stepId', message: `unknown step "${stepId}"` }] };
  const planned = planStep({ ...steps[index]!, resources }, 'resources', context, agents);
  return planned.issues.length > 0
    ? { issues: planned.issues }
    : { stepId, resources, group: planned.group, issues: [] };
}
