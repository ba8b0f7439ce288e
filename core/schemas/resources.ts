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

/** The Ray custom resource that carries `diskGb`. */
export const DISK_RESOURCE = 'disk_gb';
