/**
 * The data the autoscaling policy reads and writes. The observe activity fills
 * a PolicyInput each tick; `decide` (policy.ts) turns it into a PolicyDecision;
 * the autoscaler workflow records both and feeds `decision.state` back into the
 * next tick. Plain JSON throughout, so every decision is readable in history.
 */
import { z } from 'zod';
import { nodeGroupSchema } from '../schemas/node-groups';
import { resourcesSchema } from '../schemas/resources';

const amount = z.number().min(0);

/**
 * Resources of one node as Ray reports them, in the units node groups declare:
 * memory in MB, and Ray's custom resource `disk_gb` as `diskGb`. Ray's
 * per-node bookkeeping resources (`node:<ip>` and the like) may be left out:
 * no step asks for them.
 */
export const nodeResourcesSchema = z
  .object({
    cpus: amount.default(0),
    gpus: amount.default(0),
    memoryMb: amount.default(0),
    diskGb: amount.default(0),
    custom: z.record(z.string().min(1), amount).default({}),
  })
  .strict();

/** One Ray node of a group, as observed this tick. */
export const observedNodeSchema = z
  .object({
    /** The id the group's node provider removes it by (local: the node's name; kuberay: the pod name). */
    nodeId: z.string().min(1),
    alive: z.boolean(),
    total: nodeResourcesSchema,
    available: nodeResourcesSchema,
    /** Since when (epoch ms) the node has run nothing; null while it runs something. */
    idleSinceMs: z.number().nullable(),
    /** Being drained for removal: no longer counted, never chosen again. */
    draining: z.boolean().default(false),
  })
  .strict();

/** Pending steps that share one resource request, in queue order. */
export const pendingRequestSchema = z
  .object({
    resources: resourcesSchema,
    count: z.number().int().min(1),
  })
  .strict();

/** What the observe activity saw of one group this tick. */
export const groupObservationSchema = z
  .object({
    /** Temporal's approximate backlog of the group's task queue. */
    backlogCount: z.number().int().min(0),
    backlogAgeSeconds: amount.default(0),
    /** Tasks per second added to and dispatched from the queue. */
    addRate: amount.default(0),
    dispatchRate: amount.default(0),
    /** Steps of this group running on Ray now. */
    runningSteps: z.number().int().min(0).default(0),
    /**
     * The backlog's resource requests in queue order, when known. Steps beyond
     * those described (backlogCount larger than the sum of counts) are taken
     * to be default steps of one CPU. Null: all are default steps.
     */
    pendingDemand: z.array(pendingRequestSchema).nullable().default(null),
    /** Nodes asked of the provider that have not joined Ray yet. */
    startingNodes: z.number().int().min(0).default(0),
    nodes: z.array(observedNodeSchema).default([]),
  })
  .strict();

export const budgetSchema = z
  .object({
    /** The node-hours the cluster may use in the budget period. */
    nodeHours: z.number().positive(),
    /** Node-hours used so far in the period. */
    nodeHoursUsed: amount,
    /**
     * A node is added only if the rest of the budget would pay for every node
     * (old and new) for this long: a new node lives at least about one idle
     * timeout, so that is the natural value.
     */
    lookaheadMs: z.number().int().positive(),
  })
  .strict();

export const policySettingsSchema = z
  .object({
    /** A node is removed only after running nothing for this long. */
    idleTimeoutMs: z.number().int().min(0),
    /** At most this many nodes are added to one group in one tick. */
    maxScaleUpStep: z.number().int().min(1),
    /**
     * After a scale event, the opposite direction waits this long, so that a
     * load oscillating around a threshold does not flap the cluster.
     */
    cooldownMs: z.number().int().min(0),
    /**
     * When steps arrive faster than they are dispatched, count the steps that
     * will have arrived this many seconds from now as pending already (0: off).
     * About a node's start-up time makes new nodes ready when the work is.
     */
    anticipationSeconds: amount.default(0),
    budget: budgetSchema.optional(),
  })
  .strict();

/** What the policy remembers of a group between ticks. */
export const groupScalingStateSchema = z
  .object({
    lastScaleUpMs: z.number().nullable().default(null),
    lastScaleDownMs: z.number().nullable().default(null),
  })
  .strict();

export const policyStateSchema = z
  .object({ groups: z.record(z.string(), groupScalingStateSchema).default({}) })
  .strict();

export const policyInputSchema = z
  .object({
    /** The tick's time (epoch ms); the policy reads no clock of its own. */
    nowMs: z.number(),
    groups: z.array(nodeGroupSchema).min(1),
    /** By group name. A group without an observation is held as it is. */
    observations: z.record(z.string(), groupObservationSchema),
    settings: policySettingsSchema,
    state: policyStateSchema.default({ groups: {} }),
  })
  .strict();

export const groupDecisionSchema = z
  .object({
    group: z.string(),
    /** Usable nodes now: alive, not draining, plus nodes still starting. */
    current: z.number().int().min(0),
    /** The node count the policy aims at, within minNodes..maxNodes. */
    desired: z.number().int().min(0),
    /** Nodes to ask the provider for this tick. */
    add: z.number().int().min(0),
    /** Idle nodes to drain and remove this tick. */
    remove: z.array(z.string()),
    /** Pending steps that no node of this group could ever hold. */
    infeasibleSteps: z.number().int().min(0),
    /** Why, in words, for the Web UI and the logs. */
    reasons: z.array(z.string()),
  })
  .strict();

export const policyDecisionSchema = z
  .object({
    nowMs: z.number(),
    groups: z.array(groupDecisionSchema),
    state: policyStateSchema,
  })
  .strict();

export type NodeResources = z.infer<typeof nodeResourcesSchema>;
export type ObservedNode = z.infer<typeof observedNodeSchema>;
export type PendingRequest = z.infer<typeof pendingRequestSchema>;
export type GroupObservation = z.infer<typeof groupObservationSchema>;
export type Budget = z.infer<typeof budgetSchema>;
export type PolicySettings = z.infer<typeof policySettingsSchema>;
export type GroupScalingState = z.infer<typeof groupScalingStateSchema>;
export type PolicyState = z.infer<typeof policyStateSchema>;
export type PolicyInput = z.infer<typeof policyInputSchema>;
export type GroupDecision = z.infer<typeof groupDecisionSchema>;
export type PolicyDecision = z.infer<typeof policyDecisionSchema>;
