// Bounds every teardown in the test suite. A teardown that never finishes (a Temporal worker that does not shut
// down, an inference thread that does not exit, a child process that ignores SIGTERM) would otherwise keep its test
// file's process alive until CI's own limit, with nothing saying what hung. `within` fails with the name of what
// hung, and makes the process exit soon after so the runner records the failure and moves on.
export class TeardownTimeoutError extends Error {
  override readonly name = 'TeardownTimeoutError';
}

/** How long the process may live on after a teardown timed out: enough for the reporter to print the failure. */
const EXIT_AFTER_TIMEOUT_MS = 10_000;

/**
 * Resolves as `work` does, or rejects with a TeardownTimeoutError naming `what` once `ms` have passed. After a
 * timeout the process exits (code 1) within EXIT_AFTER_TIMEOUT_MS, since whatever hung still holds it open.
 */
export async function within<T>(what: string, ms: number, work: Promise<T> | (() => Promise<T>)): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      process.exitCode = 1;
      setTimeout(() => {
        process.stderr.write(`[teardown] exiting: ${what} is still running\n`);
        process.exit(1);
      }, EXIT_AFTER_TIMEOUT_MS).unref();
      reject(new TeardownTimeoutError(`Teardown hung: ${what} did not finish within ${ms} ms`));
    }, ms);
  });
  try {
    return await Promise.race([typeof work === 'function' ? work() : work, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
