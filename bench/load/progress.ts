// The progress line on stderr while a segment runs: rewritten in place on a terminal, a plain line every few
// seconds otherwise (a log file should not fill with carriage returns).
import { performance } from 'node:perf_hooks';
import type { RequestRecord } from './records';

export function progressLine(label: string, records: readonly RequestRecord[], planned: number): string {
  let sent = 0;
  let accepted = 0;
  let done = 0;
  let failed = 0;
  for (const r of records) {
    if (r.sentAt !== undefined) sent += 1;
    if (r.acceptedAt !== undefined) accepted += 1;
    if (r.outcome === 'completed') done += 1;
    else if (r.outcome !== undefined) failed += 1;
  }
  const inFlight = sent - done - failed;
  return `${label}: sent ${sent}/${planned}, accepted ${accepted}, done ${done}, failed ${failed}, in flight ${inFlight}`;
}

/** Shows the progress of `records` until the returned function is called. */
export function showProgress(label: string, records: readonly RequestRecord[], planned: number): () => void {
  const tty = process.stderr.isTTY === true;
  const started = performance.now();
  const render = (): string =>
    `${progressLine(label, records, planned)} (${((performance.now() - started) / 1000).toFixed(0)} s)`;
  const timer = setInterval(
    () => process.stderr.write(tty ? `\r\x1b[K${render()}` : `${render()}\n`),
    tty ? 250 : 5_000,
  );
  return () => {
    clearInterval(timer);
    process.stderr.write(tty ? `\r\x1b[K${render()}\n` : `${render()}\n`);
  };
}
