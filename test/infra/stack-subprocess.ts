// Fixture for test/infra/stack.test.ts: starts a stack with startStack() and prints its children as one JSON line,
// then waits to be killed. Lets the test SIGKILL the stack's owner and watch what happens to the children.
import { startStack } from '../../infra/test-stack';

startStack({ gpuTypes: ['a10g'] }).then(
  (stack) => {
    process.stdout.write(`${JSON.stringify({ children: stack.children() })}\n`);
    setInterval(() => undefined, 60_000);
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  },
);
