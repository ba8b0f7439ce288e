/**
 * One way to say what is wrong with an input: a list of `{ path, message }`,
 * rendered as `steps[1].dependsOn[0]: unknown step "x"; …`. Every zod
 * validation in the project turns its issues into this form here, so errors
 * read the same from the workflow, an activity, the CLI or the stack.
 */

export interface Issue {
  /** Where, as a property path (`steps[1].resources.cpus`), or `(input)` for the whole value. */
  path: string;
  message: string;
}

/** The part of a zod error this needs (zod 3 and 4 alike). */
export interface IssueSource {
  issues: ReadonlyArray<{ path: ReadonlyArray<PropertyKey>; message: string }>;
}

/** `['steps', 1, 'id']` → `steps[1].id`. */
export function formatPath(path: readonly PropertyKey[]): string {
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`))
    .join('');
}

/** The issues of a zod error; `prefix` names where the validated value sits (`input`, `step`). */
export function issuesOf(error: IssueSource, prefix = ''): Issue[] {
  return error.issues.map((issue) => {
    const inner = formatPath(issue.path);
    const path =
      prefix && inner
        ? inner.startsWith('[')
          ? `${prefix}${inner}`
          : `${prefix}.${inner}`
        : prefix || inner;
    return { path: path || '(input)', message: issue.message };
  });
}

export function describeIssues(issues: readonly Issue[]): string {
  return issues.map((i) => `${i.path}: ${i.message}`).join('; ');
}

/** A zod error as one line: every issue with its path. */
export function describeZodError(error: IssueSource, prefix = ''): string {
  return describeIssues(issuesOf(error, prefix));
}
