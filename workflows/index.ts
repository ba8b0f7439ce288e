/** Every workflow the pipeline worker registers (the bundle's entry point). */
export { pipeline } from './pipeline';
export { agentPerformance } from './agent-performance';
// Code-defined pipelines: each is exported under its workflow type (workflowTypeOf(name)).
export { batchScoring, researchReport, ticketTriage } from '../agents';
export { autoscaler } from './autoscaler';
