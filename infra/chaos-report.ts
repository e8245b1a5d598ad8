// What one chaos experiment reports, shared by the experiments (test/chaos) and `npm run chaos` (infra/chaos.ts),
// which collects the lines through the file named by ATELIER_CHAOS_REPORT.
import { appendFileSync } from 'node:fs';

/** What one chaos experiment measured; `recoveryMs` is the experiment's recovery figure (see each experiment). */
export interface ExperimentFigures {
  readonly accepted: number;
  readonly completedOnce: number;
  readonly failedWithCode: number;
  readonly lost: number;
  readonly duplicates: number;
  readonly recoveryMs: number;
  /** Further times an experiment measured, ms, by name (region_outage: detection, failback), shown beside recovery. */
  readonly phasesMs?: Readonly<Record<string, number>>;
}

export interface ExperimentLine extends ExperimentFigures {
  readonly experiment: string;
}

/** Prints the experiment's JSON line, and appends it to ATELIER_CHAOS_REPORT when `npm run chaos` collects them. */
export function reportExperiment(experiment: string, figures: ExperimentFigures): void {
  const line = `${JSON.stringify({ experiment, ...figures } satisfies ExperimentLine)}\n`;
  process.stdout.write(line);
  const report = process.env.ATELIER_CHAOS_REPORT;
  if (report) appendFileSync(report, line);
}
