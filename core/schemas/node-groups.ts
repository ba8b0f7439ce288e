import { z } from 'zod';

/**
 * A node group: one resource class of Ray worker nodes, served by its own
 * Temporal activity task queue. Declared in config/node-groups.json.
 */
export const nodeGroupSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'lowercase letters, digits and dashes'),
    provider: z.enum(['local', 'kuberay']).default('local'),
    /** What one node of the group offers. */
    node: z
      .object({
        cpus: z.number().min(0),
        gpus: z.number().min(0).default(0),
        memoryMb: z.number().positive(),
        diskGb: z.number().min(0).default(0),
        custom: z.record(z.string().min(1), z.number().min(0)).default({}),
        labels: z.record(z.string().min(1), z.string()).default({}),
      })
      .strict(),
    minNodes: z.number().int().min(0),
    maxNodes: z.number().int().min(0),
    /** Nodes the local stack starts with (defaults to minNodes). */
    initialNodes: z.number().int().min(0).optional(),
    costPerNodeHour: z.number().min(0),
  })
  .strict()
  .refine((g) => g.maxNodes >= g.minNodes, { message: 'maxNodes must be >= minNodes', path: ['maxNodes'] });

export const nodeGroupsConfigSchema = z
  .object({ groups: z.array(nodeGroupSchema).min(1) })
  .strict()
  .refine((c) => new Set(c.groups.map((g) => g.name)).size === c.groups.length, {
    message: 'node group names must be unique',
    path: ['groups'],
  });

export type NodeGroup = z.infer<typeof nodeGroupSchema>;
export type NodeGroupsConfig = z.infer<typeof nodeGroupsConfigSchema>;

/** The Ray node label that names a node's group. */
export const NODE_GROUP_LABEL = 'pantheon.io/group';
