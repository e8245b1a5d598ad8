// What `npm run generate` shows on stderr while its request runs: one line per state (the estimate at acceptance,
// the queue position while it waits, a bar while it generates), rewritten in place on a terminal.
import type { RequestEventFrame } from './client';

function seconds(ms: number): string {
  return `${Math.ceil(ms / 1000)} s`;
}

/** One line describing a request's state, with a bar while it generates. */
export function progressLine(frame: RequestEventFrame, width = 30): string {
  switch (frame.type) {
    case 'accepted': {
      const e = frame.estimate;
      const eta = e?.etaMs === undefined ? '' : `, done in ~${seconds(e.etaMs)}`;
      return e
        ? `accepted  ${e.gpuSeconds} GPU-s on ${e.gpuType}, $${e.costUsd}${eta}`
        : `accepted  ${frame.workflowId}`;
    }
    case 'status':
      if (frame.queuePosition === undefined) return frame.status;
      return `queued    #${frame.queuePosition}${frame.etaMs === undefined ? '' : `, done in ~${seconds(frame.etaMs)}`}`;
    case 'progress': {
      const filled = Math.round((frame.step / Math.max(1, frame.totalSteps)) * width);
      return `generating [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${frame.step}/${frame.totalSteps}`;
    }
    case 'completed':
      return `completed ${frame.images.length} image(s)`;
    case 'failed':
      return `failed ${frame.code}: ${frame.message}`;
  }
}

/**
 * Progress on stderr: on a terminal one line rewritten in place at every frame; otherwise one line per frame, with
 * generation progress only at every 10% so a log file is not flooded with a line per step.
 */
export interface ProgressPrinter {
  show(frame: RequestEventFrame): void;
  /** Ends the line being rewritten in place, so what follows starts on a fresh line. */
  endLine(): void;
}

export function progressPrinter(stderr: NodeJS.WriteStream, quiet: boolean): ProgressPrinter {
  const tty = stderr.isTTY === true;
  let lastProgressDecile = -1;
  return {
    show(frame) {
      if (!tty && frame.type === 'progress') {
        const decile = Math.floor((10 * frame.step) / Math.max(1, frame.totalSteps));
        if (decile === lastProgressDecile) return;
        lastProgressDecile = decile;
      }
      if (!quiet) stderr.write(tty ? `\r\x1b[2K${progressLine(frame)}` : `${progressLine(frame)}\n`);
    },
    endLine() {
      if (!quiet && tty) stderr.write('\n');
    },
  };
}
