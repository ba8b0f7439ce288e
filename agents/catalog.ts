/**
 * The agents this deployment knows: what JSON pipeline specs may name in a
 * step's `agent` field. Add your agents here (they are compiled into the
 * workflow bundle, so a change ships with a worker deploy).
 */
import { AgentCatalog } from './define';
import { EXAMPLE_AGENTS } from './examples/agents';

export const agentCatalog = new AgentCatalog([...EXAMPLE_AGENTS]);
