import { ApplicationFailure } from '@temporalio/common';
import type {
  ForgetMemoryInput,
  ForgetMemoryResult,
  OpenAgentMemoryInput,
  OpenAgentMemoryResult,
  RetainAgentFactsInput,
  RecallMemoryInput,
  RecallMemoryResult,
  RetainMemoryInput,
  RetainMemoryResult,
} from '../../core/schemas/memory';
import type { MemoryConfig } from './config';
import { MemoryConfigError, MemoryInputError } from './errors';
import { openMemoryStore, type MemoryStore } from './store';

export interface MemoryActivities {
  recallMemory(input: RecallMemoryInput): Promise<RecallMemoryResult>;
  retainMemory(input: RetainMemoryInput): Promise<RetainMemoryResult>;
  forgetMemory(input: ForgetMemoryInput): Promise<ForgetMemoryResult>;
  openAgentMemory(input: OpenAgentMemoryInput): Promise<OpenAgentMemoryResult>;
  retainAgentFacts(input: RetainAgentFactsInput): Promise<{ stored: boolean }>;
}

/**
 * Bad input and a misconfigured store fail the activity for good (retrying
 * cannot fix them); anything else, such as Qdrant being unreachable, stays
 * retryable.
 */
function asActivityFailure(error: unknown): unknown {
  if (error instanceof MemoryInputError) {
    return ApplicationFailure.create({
      message: error.message,
      type: error.name,
      nonRetryable: true,
      details: [error.issues],
    });
  }
  if (error instanceof MemoryConfigError) {
    return ApplicationFailure.create({ message: error.message, type: error.name, nonRetryable: true });
  }
  return error;
}

/** The memory activities over a store; `getStore` is awaited on every call. */
export function createMemoryActivities(getStore: () => Promise<MemoryStore>): MemoryActivities {
  const run = async <T>(operation: (store: MemoryStore) => Promise<T>): Promise<T> => {
    try {
      return await operation(await getStore());
    } catch (error) {
      throw asActivityFailure(error);
    }
  };
  return {
    recallMemory: (input) => run((store) => store.recall(input)),
    retainMemory: (input) => run((store) => store.retain(input)),
    forgetMemory: (input) => run((store) => store.forget(input)),
    openAgentMemory: (input) => run((store) => store.openForAgent(input)),
    retainAgentFacts: (input) => run((store) => store.retainFacts(input)),
  };
}

/**
 * A store opened on first use from `config`; a failed open is forgotten so
 * that the next activity attempt retries it.
 */
export function lazyMemoryStore(config: () => MemoryConfig): () => Promise<MemoryStore> {
  let store: Promise<MemoryStore> | undefined;
  return () => {
    if (store === undefined) {
      const opening = openMemoryStore(config());
      store = opening;
      opening.catch(() => {
        if (store === opening) store = undefined;
      });
    }
    return store;
  };
}
