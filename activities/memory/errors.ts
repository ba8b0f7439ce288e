import type { z } from 'zod';

export interface MemoryInputIssue {
  /** Dotted path of the offending field, e.g. `memories.0.text`. */
  path: string;
  message: string;
}

/** Bad input to a memory operation. Nothing was read or written. Retrying does not help. */
export class MemoryInputError extends Error {
  override readonly name = 'MemoryInputError';

  constructor(
    readonly operation: string,
    readonly issues: MemoryInputIssue[],
  ) {
    super(
      `invalid ${operation} input: ${issues.map((i) => `${i.path || '(input)'} ${i.message}`).join('; ')}`,
    );
  }

  static fromZod(operation: string, error: z.ZodError): MemoryInputError {
    return new MemoryInputError(
      operation,
      error.issues.map((issue) => ({ path: issue.path.map(String).join('.'), message: issue.message })),
    );
  }
}

/**
 * The store and its collection or embedder disagree (for example a collection
 * whose vectors have another dimension than the embedder's). Nothing was
 * written. Retrying does not help; the configuration must change.
 */
export class MemoryConfigError extends Error {
  override readonly name = 'MemoryConfigError';
}
