import { z } from 'zod';

/**
 * What a step asks of a node. Maps one to one onto Ray's task options:
 * cpus→num_cpus, gpus→num_gpus, memoryMb→memory, custom→resources,
 * diskGb→the custom resource `disk_gb` that node groups declare, labels→label_selector.
 */
export const resourcesSchema = z
  .object({
    cpus: z.number().min(0).optional(),
    gpus: z.number().min(0).optional(),
    memoryMb: z.number().min(0).optional(),
    diskGb: z.number().min(0).optional(),
    custom: z.record(z.string().min(1), z.number().min(0)).optional(),
    labels: z.record(z.string().min(1), z.string()).optional(),
  })
  .strict();

export type Resources = z.infer<typeof resourcesSchema>;

/** Label keys under `ray.io/` are Ray's own: the orchestrator sets them (to keep a retry off a node), a step never does. */
export const RAY_LABEL_PREFIX = 'ray.io/';
/** A custom resource or label key: no `__proto__`-like keys, nothing JavaScript would not keep as data. */
const RESOURCE_KEY_PATTERN = /^(?!__)[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,252}$/;

/**
 * What a step may ask for: the resources above, with keys of a plain shape
 * and none of Ray's own labels (a `ray.io/` selector no node carries would
 * leave the step pending until its timeout).
 */
export const stepResourcesSchema = resourcesSchema
  .extend({
    custom: z.record(z.string().regex(RESOURCE_KEY_PATTERN, 'a resource name'), z.number().min(0)).optional(),
    labels: z.record(z.string().regex(RESOURCE_KEY_PATTERN, 'a label key'), z.string().max(253)).optional(),
  })
  .strict()
  .superRefine((resources, ctx) => {
    for (const key of Object.keys(resources.labels ?? {}))
      if (key.startsWith(RAY_LABEL_PREFIX))
        ctx.addIssue({
          code: 'custom',
          path: ['labels', key],
          message: `labels under ${RAY_LABEL_PREFIX} are Ray's own; a step cannot ask for them`,
        });
  });

/** The Ray custom resource that carries `diskGb`. */
export const DISK_RESOURCE = 'disk_gb';
