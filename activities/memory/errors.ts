import type { z } from 'zod';
import { describeIssues, issuesOf, type Issue } from '../../core/issues';

export type MemoryInputIssue = Issue;

/** Bad input to a memory operation. Nothing was read or written. Retrying does not help. */
export class MemoryInputError extends Error {
  override readonly name = 'MemoryInputError';

  constructor(
    readonly operation: string,
    readonly issues: MemoryInputIssue[],
  ) {
    super(`invalid ${operation} input: ${describeIssues(issues)}`);
  }

  static fromZod(operation: string, error: z.ZodError): MemoryInputError {
    return new MemoryInputError(operation, issuesOf(error));
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
