/**
 * The workflow engine, ready to register: `pantheonWorkflows` turns a
 * deployment — the agents it knows and the code-defined pipelines it declares
 * (agents/index.ts) — into the workflows a worker registers. The workflow
 * bundle's entry point (agents/workflows.ts) exports what it returns.
 */
import { ApplicationFailure, workflowInfo } from '@temporalio/workflow';
import type { AgentCatalog } from '../core/agents';
import type { PipelineResult } from '../core/schemas/pipeline-spec';
import type * as AgentPerformanceModule from './agent-performance';
import type * as AutoscalerModule from './autoscaler/autoscaler';
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

/**
 * A workflow whose module is evaluated when one of its runs starts, not for every workflow. Temporal's
 * reusable V8 context evaluates every module a workflow imports again for each new workflow (that keeps
 * module state apart), so a module imported here at the top is paid for by every pipeline's first
 * workflow task: the autoscaler's and the agent-performance workflow's, with their schemas and
 * policies, were ~18 ms of it (bench/README.md, "Where a one-step pipeline's time goes"). Webpack
 * still bundles the module; `require` here only defers its evaluation to the run that needs it.
 */
function loadedWhenRun<A extends unknown[], R>(
  load: () => (...args: A) => Promise<R>,
): (...args: A) => Promise<R> {
  return (...args: A) => load()(...args);
}

/* eslint-disable @typescript-eslint/no-require-imports -- deferred evaluation, see loadedWhenRun */
const agentPerformance = loadedWhenRun(
  () => (require('./agent-performance') as typeof AgentPerformanceModule).agentPerformance,
);
const autoscaler = loadedWhenRun(
  () => (require('./autoscaler/autoscaler') as typeof AutoscalerModule).autoscaler,
);
/* eslint-enable @typescript-eslint/no-require-imports */

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
