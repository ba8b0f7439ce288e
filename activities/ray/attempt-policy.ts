/**
 * What the next attempt of a step asks Ray for, from what happened to the
 * earlier generations of its task (the dispatcher's history of the key). Pure.
 *
 * It runs inside the activity rather than in the workflow, so Temporal's own
 * server-side retries keep working with unchanged activity input: whatever
 * attempt runs, on whatever worker, it reads the key's history and plans from
 * it.
 *
 * - A node that died under the step (`node_lost`) is avoided by every later
 *   attempt (label selector `ray.io/node-id: !in(...)`). A dead node's id never
 *   comes back, so avoiding it cannot starve the step; it matters in the
 *   seconds before Ray marks the node dead, when the node still looks free.
 *   A worker process that crashed on a node that is still there is retried
 *   without avoiding the node: one crash of user code must not, after a few
 *   retries, rule out every node of a group.
 * - A step killed for memory (`oom`) is retried with twice the memory it ran
 *   with, up to a cap; at the cap it fails for good, with a message that says
 *   so. Memory never shrinks from one attempt to the next.
 */
import type { Resources } from '../../core/schemas/resources';

export const FAILURE_KINDS = [
  'application',
  'rejected',
  'oom',
  'node_lost',
  'worker_crashed',
  'cancelled',
  'lost',
  'ray',
] as const;
export type FailureKind = (typeof FAILURE_KINDS)[number];

/** One finished generation of a step's Ray task. */
export interface PriorTry {
  generation: number;
  attempt: number;
  outcome: 'succeeded' | FailureKind;
  node: string | null;
  /** The memory request it ran with (null: none). */
  memoryMb: number | null;
  /** Why it failed, in short. */
  reason?: string;
}

export interface AttemptPolicyConfig {
  /** The most memory a step may be given: at most what one node of its group has. */
  memoryCapMb: number;
  /** What a step that asked for no memory gets after being killed for memory. */
  firstOomMemoryMb: number;
}

export const MEMORY_GROWTH_FACTOR = 2;

export type AttemptPlan =
  | { ok: true; resources: Resources; avoidNodes: string[]; grewMemoryFromMb?: number | null }
  | { ok: false; type: 'StepMemoryCapReached'; message: string };

/** The memory the last generation ran with, or the step's own request; never less than the request. */
function currentMemoryMb(base: Resources, tries: readonly PriorTry[]): number | null {
  const known = [base.memoryMb ?? null, ...tries.map((t) => t.memoryMb)].filter(
    (m): m is number => m !== null && m > 0,
  );
  return known.length > 0 ? Math.max(...known) : null;
}

export function planAttempt(
  stepId: string,
  base: Resources,
  tries: readonly PriorTry[],
  config: AttemptPolicyConfig,
): AttemptPlan {
  const avoidNodes = [
    ...new Set(tries.filter((t) => t.outcome === 'node_lost' && t.node).map((t) => t.node as string)),
  ];
  const current = currentMemoryMb(base, tries);
  const last = tries[tries.length - 1];
  const resources: Resources = { ...base };
  if (current !== null) resources.memoryMb = current;
  if (last?.outcome !== 'oom') return { ok: true, resources, avoidNodes };

  // A request already above the cap was accepted by placement; the cap never shrinks it.
  const cap = Math.max(config.memoryCapMb, base.memoryMb ?? 0);
  if (current !== null && current >= cap)
    return {
      ok: false,
      type: 'StepMemoryCapReached',
      message:
        `step "${stepId}" ran out of memory with memoryMb=${current}, the cap ` +
        `(${cap} MB: the smaller of the configured maximum and one node of its group); ` +
        `it is not retried with more`,
    };
  const grown = current === null ? config.firstOomMemoryMb : current * MEMORY_GROWTH_FACTOR;
  resources.memoryMb = Math.min(Math.max(grown, current ?? 0), cap);
  return { ok: true, resources, avoidNodes, grewMemoryFromMb: current };
}
