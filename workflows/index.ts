/**
 * The workflow engine, ready to register: `pantheonWorkflows` turns a
 * deployment — the agents it knows and the code-defined pipelines it declares
 * (agents/index.ts) — into the workflows a worker registers. The workflow
 * bundle's entry point (agents/workflows.ts) exports what it returns.
 */
import { ApplicationFailure, workflowInfo } from '@temporalio/workflow';
import type { AgentCatalog } from '../core/agents';
import type { PipelineResult } from '../core/schemas/pipeline-spec';
import { agentPerformance } from './agent-performance';
import { autoscaler } from './autoscaler/autoscaler';
import { runCodePipeline, type PipelineDeclaration } from './pipeline/code-pipeline';
import { pipelineWorkflow } from './pipeline/pipeline';

export {
  definePipeline,
  fanOut,
  join,
  workflowTypeOf,
  type PipelineDeclaration,
} from './pipeline/code-pipeline';

export interface Deployment {
  agents: AgentCatalog;
  pipelines: readonly PipelineDeclaration[];
}

/** Workflow types that are not code-defined pipelines. */
export const ENGINE_WORKFLOW_TYPES = ['pipeline', 'agentPerformance', 'autoscaler'] as const;

export function pantheonWorkflows({ agents, pipelines }: Deployment) {
  const byType = new Map<string, PipelineDeclaration>();
  for (const declaration of pipelines) {
    const clash =
      byType.get(declaration.workflowType) ??
      ENGINE_WORKFLOW_TYPES.find((t) => t === declaration.workflowType);
    if (clash !== undefined)
      throw new Error(`pipeline "${declaration.name}": workflow type ${declaration.workflowType} is taken`);
    byType.set(declaration.workflowType, declaration);
  }

  /**
   * Registered as the bundle's default (dynamic) workflow: Temporal runs it for every workflow type
   * the bundle does not export by name, and it runs the declared pipeline of that type. Any other
   * type fails at once, naming the types there are, instead of failing workflow tasks forever.
   */
  async function codePipeline(start: unknown): Promise<PipelineResult> {
    const { workflowType } = workflowInfo();
    const declaration = byType.get(workflowType);
    if (declaration === undefined)
      throw ApplicationFailure.create({
        type: 'UnknownWorkflowType',
        message: `no workflow of type "${workflowType}" is registered (known: ${[...ENGINE_WORKFLOW_TYPES, ...byType.keys()].join(', ')})`,
        nonRetryable: true,
      });
    return runCodePipeline(declaration, agents, start);
  }

  return {
    pipeline: pipelineWorkflow(agents),
    agentPerformance,
    autoscaler,
    codePipeline,
    /** Every workflow type this deployment answers. */
    workflowTypes: [...ENGINE_WORKFLOW_TYPES, ...byType.keys()],
  };
}
