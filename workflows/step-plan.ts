/**
 * Placement planning before a pipeline runs: every step's task must be allowed
 * and its resources must fit some node group (Ray itself would wait forever on
 * an infeasible request). Pure; workflow-safe.
 */
import type { SpecIssue } from './dag';
import { chooseNodeGroup } from './placement';
import type { NodeGroup } from './schemas/node-groups';
import type { PipelineSpec } from './schemas/pipeline-spec';
import { refuseTaskRef } from './schemas/task-ref';

export interface PlanContext {
  nodeGroups: NodeGroup[];
  allowedTaskPackages: string[];
}

export type StepPlan = { ok: true; groups: Record<string, string> } | { ok: false; issues: SpecIssue[] };

export function planSteps(spec: PipelineSpec, context: PlanContext): StepPlan {
  const issues: SpecIssue[] = [];
  const groups: Record<string, string> = {};
  spec.steps.forEach((step, i) => {
    if (step.task !== undefined) {
      const refused = refuseTaskRef(step.task, context.allowedTaskPackages);
      if (refused) issues.push({ path: `steps[${i}].task`, message: refused });
    }
    const choice = chooseNodeGroup(step.resources ?? {}, context.nodeGroups);
    if ('infeasible' in choice) issues.push({ path: `steps[${i}].resources`, message: choice.infeasible });
    else groups[step.id] = choice.group;
  });
  return issues.length > 0 ? { ok: false, issues } : { ok: true, groups };
}
