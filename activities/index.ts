/**
 * Every activity the workers register, built from their dependencies. The
 * pipeline worker registers the control activities; node-group workers the
 * Ray step activities.
 */
export { createControlActivities, type ControlActivities, type PlacementContext } from './control';
export {
  createPipelineControlActivities,
  type PipelineControlActivities,
  type ReprioritizeStepsInput,
} from './pipeline-control';
export { createRayTaskActivities, type RayTaskActivities } from './ray/task-step';
export { createRayJobActivities, type RayJobActivities } from './ray/job-step';
