/**
 * The workflow bundle's entry point (stack/workflow-bundle.ts bundles this
 * file): every workflow this deployment's workers register. The engine's
 * workflows by name; every code-defined pipeline through the default
 * (dynamic) workflow, which runs the declaration its workflow type names.
 */
import { pantheonWorkflows } from '../workflows';
import { agentCatalog, codePipelines } from '.';

const registered = pantheonWorkflows({ agents: agentCatalog, pipelines: codePipelines });

export const { pipeline, agentPerformance, autoscaler } = registered;
export default registered.codePipeline;
