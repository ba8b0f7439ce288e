/**
 * Task queue names: one constant per fact. The pipeline queue is a contract
 * (`temporal workflow start --task-queue pantheon`); each node group has its own
 * activity queue so that its backlog is its own scaling signal.
 */
export const PIPELINE_TASK_QUEUE = 'pantheon';

export function nodeGroupTaskQueue(group: string): string {
  return `pantheon-ray-${group}`;
}
