// What a GPU worker saw of each attempt, for the tests that time the GPU queues (fairness, relax on idle capacity): an
// inference wrapper (GenerationHarnessOptions.wrapInference) that tells `start` of each attempt as the worker takes it,
// with its activity info (queue, scheduled time, priority), and `end` once it has ended, however it ended.
import { Context, type Info } from '@temporalio/activity';
import type { InferenceInput } from '../../core/activities';
import type { GenerationHarnessOptions } from './temporal';

export function observeGpuAttempts(on: {
  start: (input: InferenceInput, info: Info) => void;
  end?: (input: InferenceInput) => void;
}): NonNullable<GenerationHarnessOptions['wrapInference']> {
  return (activities) => ({
    async runInference(input) {
      on.start(input, Context.current().info);
      try {
        return await activities.runInference(input);
      } finally {
        on.end?.(input);
      }
    },
  });
}
