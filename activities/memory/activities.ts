/**
 * Temporal activities for agent memory, to register on the worker:
 *
 *     import * as memoryActivities from '../activities/memory/activities';
 *     Worker.create({ activities: { ...memoryActivities, ... } });
 *
 * Only the three activity functions are exported from this module, so a
 * namespace import registers nothing else. Each takes one input object
 * (schemas in workflows/schemas/memory.ts), validates it again, and fails
 * non-retryably (types `MemoryInputError`, `MemoryConfigError`) when the input
 * or the store's configuration is wrong. The store comes from the environment:
 * QDRANT_URL, QDRANT_API_KEY, PANTHEON_MEMORY_* (see ./config.ts).
 */
import { createMemoryActivities, defaultMemoryStore } from './memory-activities';

const activities = createMemoryActivities(defaultMemoryStore);

/** Before a step: the project's shared memory and the agent's own private memory matching the query. */
export const recallMemory = activities.recallMemory;
/** After a step: writes what the agent returned for retention; a retried step overwrites itself. */
export const retainMemory = activities.retainMemory;
/** Deletes a project's memory, or the part of it of one agent, pipeline or scope. */
export const forgetMemory = activities.forgetMemory;
