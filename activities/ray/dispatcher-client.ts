/**
 * The dispatcher, as the worker talks to it: a typed client over the Ray
 * bridge (ray-tasks/pantheon_runtime/bridge.py), whose methods mirror the
 * dispatcher actor's (ray-tasks/pantheon_runtime/dispatcher.py). Every answer
 * is checked with zod; an answer of the wrong shape names the field.
 *
 *   submit         attach to the key's task, or start its next generation; or a refusal
 *                  (a task outside the dispatcher's allowlist, other work under the key)
 *   wait           the outcome of one generation (pushed when it ends)
 *   status         the key's current state, for heartbeats (null: unknown key)
 *   cancel         stop the key's task: interrupt, then force after the grace
 *   finishedRuns   the workflow runs the dispatcher keeps finished entries of
 *   release        forget a closed run's finished entries (dispatcher-retention.ts)
 *   ping           the dispatcher's allowlist and memory use
 *   reserve, giveBack, renew, releaseHolder, admissionState
 *                  cluster-wide admission (ray-tasks/pantheon_runtime/admission.py)
 */
import { z } from 'zod';
import { describeZodError } from '../../core/issues';
import type { Resources } from '../../core/schemas/resources';
import { PythonHelperCallError, PythonHelperLostError, type PythonHelper } from '../../stack/python-helper';
import { FAILURE_KINDS } from './attempt-policy';
import type { RayTaskOptions } from './ray-options';
import { failedItemSchema, mapItemsSchema, type MapCall } from '../../core/schemas/map-step';

export const historyItemSchema = z.object({
  generation: z.number().int(),
  attempt: z.number().int(),
  outcome: z.enum(['succeeded', ...FAILURE_KINDS]),
  node: z.string().nullable(),
  memoryBytes: z.number().nullable().optional(),
  reason: z.string().nullable().optional(),
});

const stepStateSchema = z.object({
  key: z.string(),
  generation: z.number().int(),
  state: z.enum(['pending', 'running', 'succeeded', 'failed', 'cancelled']),
  node: z.string().nullable(),
  nodes: z.array(z.string()),
  attempt: z.number().int(),
  queuedMs: z.number(),
  runningMs: z.number(),
  memoryBytes: z.number().nullable().optional(),
  history: z.array(historyItemSchema).default([]),
  attached: z.boolean().optional(),
  /** A map step's items. */
  items: mapItemsSchema.optional(),
});
export type RayStepState = z.infer<typeof stepStateSchema>;

/** Refused before anything ran: `TaskRefRefused` (field `task` or `kwargs.task`), `StepKeyConflict` (field `key`). */
const refusalSchema = z.object({
  refused: z.object({ type: z.string(), field: z.string(), message: z.string() }),
});

const submitAnswerSchema = z.union([
  refusalSchema,
  z.object({ conflict: z.literal(true), generation: z.number().int() }).passthrough(),
  stepStateSchema,
]);

const finishedRunsSchema = z.array(
  z.object({ workflowId: z.string(), runId: z.string(), keys: z.number().int() }),
);

const pingSchema = z
  .object({
    rayVersion: z.string(),
    dispatcher: z
      .object({
        entries: z.number().int(),
        allowlist: z.array(z.string()),
        outputs: z
          .object({
            budgetBytes: z.number(),
            inMemoryBytes: z.number(),
            spilled: z.number().int(),
            spilledBytes: z.number(),
          })
          .passthrough(),
      })
      .passthrough(),
  })
  .passthrough();

const failureSchema = z.object({
  kind: z.enum(FAILURE_KINDS),
  type: z.string(),
  message: z.string(),
  traceback: z.string().optional(),
  /** A map's items that failed for good (at most 100 listed), how many failed, how many never started. */
  failedItems: z.array(failedItemSchema).optional(),
  failedCount: z.number().int().optional(),
  notStarted: z.number().int().optional(),
});
const outcomeSchema = z.discriminatedUnion('ok', [
  z.object({
    ok: z.literal(true),
    output: z.unknown(),
    node: z.string().nullable(),
    nodes: z.array(z.string()),
    queuedMs: z.number(),
    runningMs: z.number(),
    memoryBytes: z.number().nullable().optional(),
    history: z.array(historyItemSchema).default([]),
    items: mapItemsSchema.optional(),
  }),
  z.object({
    ok: z.literal(false),
    error: failureSchema,
    node: z.string().nullable(),
    nodes: z.array(z.string()).default([]),
    memoryBytes: z.number().nullable().optional(),
    history: z.array(historyItemSchema).default([]),
    items: mapItemsSchema.optional(),
  }),
]);

export type HistoryItem = z.infer<typeof historyItemSchema>;
export type SubmitAnswer = z.infer<typeof submitAnswerSchema>;
export type FinishedRun = z.infer<typeof finishedRunsSchema>[number];
export type Refusal = z.infer<typeof refusalSchema>['refused'];

/** The refusal a submit answered, if it was one. */
export function refusalOf(answer: SubmitAnswer): Refusal | undefined {
  const parsed = refusalSchema.safeParse(answer);
  return parsed.success ? parsed.data.refused : undefined;
}
export type DispatcherInfo = z.infer<typeof pingSchema>['dispatcher'];
export type StepOutcome = z.infer<typeof outcomeSchema>;

/** What a submission carries: the key's owner, the task and how Ray should run it. */
export interface SubmitRequest {
  key: string;
  /** The key's workflow: its finished entries are kept while this workflow's run is open. */
  workflowId: string;
  /** The workflow run and attempt asking: the dispatcher's attach rules depend on them. */
  run: string;
  attempt: number;
  task: string;
  args: unknown[];
  kwargs: Record<string, unknown>;
  /** The resources the step declared: with task and arguments, the fingerprint of the work. */
  resources: Resources;
  /** What this attempt asks of Ray (planned from the key's history: may differ between attempts). */
  options: RayTaskOptions;
  /** The dispatcher resolves the task against its own allowlist, never one sent here. */
  limits: {
    max_result_bytes: number;
    memory_guard: string;
    blob_threshold_bytes: number;
    blob_store?: string;
  };
  /** The generation this plan was made from: the dispatcher refuses it if the key moved on since. */
  plan: { basedOn: number | null };
  /** A map step: the task runs once per item of `map.over`. */
  map?: MapCall;
  /** The worker's lease whose unit of `group` this step takes in exchange for its exact request. */
  admission?: { holder: string; group: string; priority: number };
}

const reserveAnswerSchema = z.object({
  granted: z.boolean(),
  node: z.string().optional(),
  leaseS: z.number().positive(),
});
const renewAnswerSchema = z.object({
  leaseS: z.number().positive(),
  corrected: z.record(z.string(), z.number().int()),
});
const admissionStateSchema = z
  .object({
    groups: z.record(
      z.string(),
      z
        .object({
          nodes: z.number().int(),
          total: z.record(z.string(), z.number()),
          allocated: z.record(z.string(), z.number()),
          units: z.number().int(),
          steps: z.number().int(),
          waiting: z.number().int(),
        })
        .passthrough(),
    ),
    holders: z.record(z.string(), z.record(z.string(), z.number().int())),
    waiting: z.array(
      z
        .object({ key: z.string(), group: z.string(), priority: z.number(), count: z.number().int() })
        .passthrough(),
    ),
    leaseS: z.number().positive(),
    /** The newest admission events (grants, give-backs, binds, ends, expiries), oldest first. */
    trace: z.array(z.object({ at: z.number(), event: z.string() }).passthrough()).default([]),
  })
  .passthrough();
export type ReserveAnswer = z.infer<typeof reserveAnswerSchema>;
export type AdmissionState = z.infer<typeof admissionStateSchema>;

export interface CancelRequest {
  key: string;
  run: string;
  attempt: number;
  /** How long the task gets to stop after the interrupt before it is force-killed. */
  graceMs: number;
  /** Answer only once the task has stopped. */
  wait: boolean;
}

/** Parses what the bridge answered, naming the field that is wrong. */
function parseAnswer<T>(schema: z.ZodType<T>, value: unknown, method: string): T {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  throw new Error(`the Ray bridge answered ${method} with an invalid ${describeZodError(parsed.error)}`);
}

/**
 * Errors that say the Ray cluster the bridge is connected to is gone (its head, or the
 * dispatcher actor on it, died), not that the step failed: the bridge is a driver of that
 * cluster and must be started again to reach a new one.
 */
const RAY_UNAVAILABLE_TYPES = new Set([
  'ActorUnavailableError',
  'ActorDiedError',
  'RaySystemError',
  'GetTimeoutError',
  'ConnectionError',
  'RpcError',
]);

export function isRayUnavailable(err: unknown): boolean {
  if (err instanceof PythonHelperLostError) return true;
  return err instanceof PythonHelperCallError && RAY_UNAVAILABLE_TYPES.has(err.type);
}

export class DispatcherClient {
  constructor(private readonly bridge: Pick<PythonHelper, 'call' | 'restart'>) {}

  /**
   * After `isRayUnavailable`: starts the bridge again until it reaches a dispatcher (on a head
   * that `npm run stack:up`, or the cluster's operator, brought back), for at most `timeoutMs`.
   * Resolves once Ray answers; throws the last error at the deadline.
   */
  async recover(timeoutMs: number, intervalMs = 2_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      await this.bridge.restart();
      try {
        await this.bridge.call('ping');
        return;
      } catch (err) {
        if (!isRayUnavailable(err) || Date.now() + intervalMs > deadline) throw err;
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
  }

  async submit(request: SubmitRequest): Promise<SubmitAnswer> {
    return parseAnswer(submitAnswerSchema, await this.bridge.call<unknown>('submit', request), 'submit');
  }

  async wait(key: string, generation: number): Promise<StepOutcome> {
    return parseAnswer(outcomeSchema, await this.bridge.call<unknown>('wait', { key, generation }), 'wait');
  }

  async status(key: string): Promise<RayStepState | null> {
    const raw = await this.bridge.call<unknown>('status', { key });
    return raw === null ? null : parseAnswer(stepStateSchema, raw, 'status');
  }

  async cancel(request: CancelRequest): Promise<void> {
    await this.bridge.call('cancel', request);
  }

  /** The workflow runs holding entries that finished at least `minAgeS` seconds ago. */
  async finishedRuns(minAgeS: number): Promise<FinishedRun[]> {
    return parseAnswer(
      finishedRunsSchema,
      await this.bridge.call<unknown>('finished_runs', { minAgeS }),
      'finished_runs',
    );
  }

  /** Forgets the finished entries of a closed workflow run; returns how many. */
  async release(workflowId: string, runId: string): Promise<number> {
    const answer = parseAnswer(
      z.object({ released: z.number().int() }),
      await this.bridge.call<unknown>('release', { workflowId, runId }),
      'release',
    );
    return answer.released;
  }

  /** A unit of `group` for one poll by `holder`, waited for at most `timeoutS` seconds. */
  async reserve(group: string, holder: string, timeoutS: number): Promise<ReserveAnswer> {
    return parseAnswer(
      reserveAnswerSchema,
      await this.bridge.call<unknown>('admission_reserve', { group, holder, timeoutS }),
      'admission_reserve',
    );
  }

  /** One of the holder's units of `group` back (its poll found nothing, or its activity submitted no step). */
  async giveBack(group: string, holder: string): Promise<void> {
    await this.bridge.call('admission_give_back', { group, holder });
  }

  /** Keeps the holder's lease; `units` is the worker's own count per group, which the dispatcher adopts. */
  async renew(holder: string, units: Record<string, number>): Promise<z.infer<typeof renewAnswerSchema>> {
    return parseAnswer(
      renewAnswerSchema,
      await this.bridge.call<unknown>('admission_renew', { holder, units }),
      'admission_renew',
    );
  }

  /** Frees the holder's units at once (a worker shutting down). */
  async releaseHolder(holder: string): Promise<void> {
    await this.bridge.call('admission_release_holder', { holder });
  }

  /** The admission ledger: per group, nodes, totals, allocations, units and waiting steps. */
  async admissionState(): Promise<AdmissionState> {
    return parseAnswer(
      admissionStateSchema,
      await this.bridge.call<unknown>('admission_state'),
      'admission_state',
    );
  }

  /** The dispatcher's own configuration (its allowlist) and memory use. */
  async info(): Promise<DispatcherInfo> {
    return parseAnswer(pingSchema, await this.bridge.call<unknown>('ping'), 'ping').dispatcher;
  }
}
