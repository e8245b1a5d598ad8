// The floor's workflow: what any Temporal-orchestrated request costs at the least, three activities in sequence
// that do nothing, in the shape of Atelier's pipeline (safety, GPU, upload). Bundled for the bench's own Worker;
// runs in the workflow sandbox, so it imports nothing but @temporalio/workflow.
import { proxyActivities } from '@temporalio/workflow';

export interface FloorActivities {
  safety(): Promise<void>;
  gpu(): Promise<void>;
  upload(): Promise<void>;
}

// No task queue given: activities run on the workflow's own queue, served by the same Worker.
const { safety, gpu, upload } = proxyActivities<FloorActivities>({ startToCloseTimeout: '30 seconds' });

export async function floorWorkflow(): Promise<void> {
  await safety();
  await gpu();
  await upload();
}
