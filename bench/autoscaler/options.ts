// Command-line flags of `npm run simulate:autoscaler`: the window of the day to simulate, the seed of the arrivals
// and where the chart goes. Resolved once, with a TypeError naming the flag on bad input.
import { parseArgs } from 'node:util';
import { DEFAULT_ADMISSION_BOUNDS_MS } from './fleet';
import { HOUR_MS } from './traffic';

export interface SimulateOptions {
  /** Seed of the arrivals and the request mix. @default 1 */
  readonly seed: number;
  /** Start of the window, hours after midnight UTC. @default 0 (--quick: 15) */
  readonly startHour: number;
  /** Length of the window, hours. @default 24 (--quick: 2) */
  readonly hours: number;
  /** The SVG chart's path; '' writes none. @default docs/autoscaler-day.svg */
  readonly out: string;
  /** Admission's wait bounds, turbo, fast, relax, ms. @default the gateway's, 60 s, 180 s, 900 s */
  readonly admissionBoundsMs: readonly number[];
  readonly quick: boolean;
}

export const DEFAULT_CHART = 'docs/autoscaler-day.svg';

export const HELP = `npm run simulate:autoscaler [-- flags]   a day of seed 001 traffic on three autoscaling strategies

  --hours H      hours to simulate from --start (default 24)
  --start H      start of the window, hours after 00:00 UTC (default 0)
  --seed N       seed of the arrivals and the request mix (default 1)
  --out FILE     the chart, SVG (default ${DEFAULT_CHART}; --out '' for none)
  --admission T,F,R
                 admission wait bounds of turbo, fast, relax, seconds of queued work per ready worker
                 (default the gateway's: ${DEFAULT_ADMISSION_BOUNDS_MS.map((x) => x / 1000).join(',')})
  --quick        15:00 to 17:00 only (the peak and the 16:00 spike), for tests
  --help         this text

Prints the figures per strategy, fleet and tier, the checks against issue 13's targets, then one JSON line.
Exit status 0 when the simulation ran (targets are reported, not enforced), 1 when it lost a request, 2 on bad flags.
`;

const FLAGS = {
  hours: { type: 'string' },
  start: { type: 'string' },
  seed: { type: 'string' },
  out: { type: 'string' },
  admission: { type: 'string' },
  quick: { type: 'boolean' },
  help: { type: 'boolean' },
} as const;

function numberFlag(flag: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value) || value < min || value > max) {
    throw new TypeError(`--${flag} ${raw}: expected a number between ${min} and ${max}`);
  }
  return value;
}

/** Returns undefined when --help was asked for. */
export function parseSimulateOptions(argv: readonly string[]): SimulateOptions | undefined {
  const { values } = parseArgs({ args: [...argv], options: FLAGS, strict: true });
  if (values.help) return undefined;
  const quick = values.quick === true;
  const seed = numberFlag('seed', values.seed, 1, 0, 0xffff_ffff);
  if (!Number.isInteger(seed)) throw new TypeError(`--seed ${seed}: expected a whole number`);
  const startHour = numberFlag('start', values.start, quick ? 15 : 0, 0, 24);
  const hours = numberFlag('hours', values.hours, quick ? 2 : 24, 1 / 60, 48);
  const admissionBoundsMs = admissionFlag(values.admission);
  return { seed, startHour, hours, out: values.out ?? DEFAULT_CHART, admissionBoundsMs, quick };
}

function admissionFlag(raw: string | undefined): readonly number[] {
  if (raw === undefined) return DEFAULT_ADMISSION_BOUNDS_MS;
  const parts = raw.split(',');
  if (parts.length !== 3) throw new TypeError(`--admission ${raw}: expected three bounds, turbo,fast,relax seconds`);
  return parts.map((p) => numberFlag('admission', p, 0, 0, 86_400) * 1000);
}

/** The window in ms after midnight UTC. */
export function windowMs(o: Pick<SimulateOptions, 'startHour' | 'hours'>): { fromMs: number; toMs: number } {
  const fromMs = Math.round(o.startHour * HOUR_MS);
  return { fromMs, toMs: fromMs + Math.round(o.hours * HOUR_MS) };
}
