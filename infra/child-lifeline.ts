// Preloaded (`node --require dist/infra/child-lifeline.js`) into every Node child of the local stack: when the
// launcher dies without shutting us down (SIGKILL, crash, a test runner killed mid-run) we are re-parented, and
// then we shut ourselves down the same way a Ctrl-C would, instead of lingering and holding ports.
// Linux re-parents orphans to init or to a subreaper, so a changed parent pid means the launcher is gone.

const launcherPid = process.ppid;
/** How often the parent pid is checked, ms. Cheap (one getppid call). */
const CHECK_INTERVAL_MS = 1_000;
/** Time the child gets to drain after SIGTERM before it exits anyway, ms. */
const DRAIN_GRACE_MS = 30_000;

if (process.platform !== 'win32' && launcherPid > 1) {
  const timer = setInterval(() => {
    if (process.ppid === launcherPid) return;
    clearInterval(timer);
    process.stderr.write(`[lifeline] parent process ${launcherPid} is gone; shutting down\n`);
    setTimeout(() => process.exit(1), DRAIN_GRACE_MS).unref();
    // SIGTERM runs the child's own graceful shutdown handlers, exactly as the launcher would have.
    process.kill(process.pid, 'SIGTERM');
  }, CHECK_INTERVAL_MS);
  // The lifeline must never be what keeps the process alive.
  timer.unref();
}

export {};
