// Activity factories, one per worker role. Workflows import only the types of what these return
// (`ReturnType<typeof createControlActivities>`), so no implementation reaches the workflow sandbox.
import type { ControlActivities } from '../core/activities';
import { createNotificationActivities, type NotificationDeps } from './notification';
import { createSafetyActivities, type SafetyDeps } from './safety';
import { createStorageActivities, type StorageDeps } from './storage';

export type ControlActivityDeps = SafetyDeps & StorageDeps & NotificationDeps;

/** Safety, storage and notification: the activities control workers run on `<region>.control`. */
export function createControlActivities(deps: ControlActivityDeps) {
  return {
    ...createSafetyActivities(deps),
    ...createStorageActivities(deps),
    ...createNotificationActivities(deps),
  } satisfies ControlActivities;
}

export { createInferenceActivities, backendsByModel, type InferenceActivityDeps } from './inference';
export { RulesPromptScreen, type PromptScreen } from './safety';
