/**
 * This deployment: the agents it knows (what a JSON spec's `agent` field and
 * code pipelines may use) and the code-defined pipelines it declares. Listed
 * once, here: the worker's workflow registry (agents/workflows.ts) and the
 * CLI's catalog are both derived from these lists. Add your own agents and
 * pipelines here; they are compiled into the workflow bundle, so a change
 * ships with a worker deploy.
 */
import { AgentCatalog } from '../core/agents';
import { EXAMPLE_AGENTS } from './examples/agents';
import { batchScoring } from './examples/batch-scoring';
import { bulkScoring } from './examples/bulk-scoring';
import { researchReport } from './examples/research-report';
import { ticketTriage } from './examples/ticket-triage';

export * as exampleAgents from './examples/agents';

export const agentCatalog = new AgentCatalog([...EXAMPLE_AGENTS]);

export const codePipelines = [researchReport, ticketTriage, batchScoring, bulkScoring] as const;
