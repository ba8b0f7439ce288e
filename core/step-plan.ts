/**
 * Placement planning before a pipeline runs: every step's task (or its agent's
 * task) must be allowed and its resources must fit some node group (Ray itself
 * would wait forever on an infeasible request). Pure; workflow-safe.
 */
import type { Issue } from './issues';
import { AGENT_HOST_TASK } from './agent-host';
import { chooseNodeGroup } from './placement';
import type { NodeGroup } from './schemas/node-groups';
import type { StepSpec } from './schemas/pipeline-spec';
import type { Resources } from './schemas/resources';
import { refuseTaskRef } from './schemas/task-ref';

export interface PlanContext {
  nodeGroups: NodeGroup[];
  allowedTaskPackages: string[];
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
