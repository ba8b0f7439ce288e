/**
 * Code-defined agents and pipelines. Workflow-safe: workflows/index.ts
 * re-exports the pipelines so the worker registers them, and the CLI lists them.
 */
export { AgentCatalog, defineAgent, type AgentDefinition } from './define';
export { agentCatalog } from './catalog';
export * as exampleAgents from './examples/agents';
export { batchScoring } from './examples/batch-scoring';
export { researchReport } from './examples/research-report';
export { ticketTriage } from './examples/ticket-triage';

import { batchScoring } from './examples/batch-scoring';
import { researchReport } from './examples/research-report';
import { ticketTriage } from './examples/ticket-triage';

/** Every code-defined pipeline, by name. */
export const codePipelines = [researchReport, ticketTriage, batchScoring];
