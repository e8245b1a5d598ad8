// What the local-stack launcher's parts share: how a start-up fails, and the context each part starts in.
import type { Logger } from '../runtime/logger';

/** Thrown when the stack cannot start: a missing entry point, an unreachable remote service, a start-up timeout. */
export class StackStartError extends Error {
  override readonly name = 'StackStartError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface LaunchContext {
  readonly log: Logger;
  readonly extraEnv: Record<string, string>;
  readonly onOutput: (name: string, line: string) => void;
  readonly abort?: AbortSignal;
}
