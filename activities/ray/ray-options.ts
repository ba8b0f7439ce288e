/**
 * Step resources → Ray task options, one to one. Pure.
 */
import { DISK_RESOURCE, type Resources } from '../../core/schemas/resources';

export const NODE_ID_LABEL = 'ray.io/node-id';

export interface RayTaskOptions {
  num_cpus: number;
  num_gpus?: number;
  memory?: number;
  resources?: Record<string, number>;
  label_selector?: Record<string, string>;
}

/** `avoidNodes` keeps the task off nodes where earlier attempts failed. */
export function toRayOptions(resources: Resources = {}, avoidNodes: readonly string[] = []): RayTaskOptions {
  const options: RayTaskOptions = { num_cpus: resources.cpus ?? 1 };
  if (resources.gpus) options.num_gpus = resources.gpus;
  if (resources.memoryMb) options.memory = Math.ceil(resources.memoryMb * 1024 * 1024);
  const custom: Record<string, number> = { ...resources.custom };
  if (resources.diskGb) custom[DISK_RESOURCE] = resources.diskGb;
  if (Object.keys(custom).length > 0) options.resources = custom;
  const labels: Record<string, string> = { ...resources.labels };
  if (avoidNodes.length > 0) labels[NODE_ID_LABEL] = `!in(${avoidNodes.join(',')})`;
  if (Object.keys(labels).length > 0) options.label_selector = labels;
  return options;
}
