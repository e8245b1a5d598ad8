// `npm run plan -- --daily-images 1000000 --peak-qps 60 --regions 3` (issue 13, item 4): the GPUs of each fleet per
// region and their monthly cost (bench/plan/plan.ts, the day simulation's service-time model and mix), then seed 001's
// milestone checklist (bench/plan/milestones.ts), and one JSON line.
import { parseArgs } from 'node:util';
import { milestones } from './milestones';
import { plan, type Plan } from './plan';

const HELP = `npm run plan -- --daily-images N [--peak-qps Q] [--regions R] [--utilization U]

  --daily-images N   images a day (required)
  --peak-qps Q       peak requests per second (default: the seed's daily curve scaled to N)
  --regions R        regions sharing the traffic equally (default 3)
  --utilization U    GPU duty the fleets are sized for at the peak, 0..1 (default 0.7)
`;

function positive(flag: string, raw: string | undefined, fallback?: number, max = 1e12): number {
  if (raw === undefined && fallback !== undefined) return fallback;
  const value = Number(raw);
  if (raw === undefined || raw.trim() === '' || !Number.isFinite(value) || value <= 0 || value > max) {
    throw new TypeError(
      `--${flag} ${raw ?? '(missing)'}: expected a number above 0${max < 1e12 ? ` and at most ${max}` : ''}`,
    );
  }
  return value;
}

const usd = (n: number): string => `$${Math.round(n).toLocaleString('en-US')}`;

function print(p: Plan): void {
  const out: string[] = [];
  out.push(
    `Plan: ${p.dailyImages.toLocaleString('en-US')} images a day, peak ${p.peakQps.toFixed(1)} QPS, ${p.regions} region(s)`,
  );
  if (Math.abs(p.peakQps - p.curvePeakQps) / p.curvePeakQps > 0.1) {
    out.push(
      `  (the seed's daily curve puts this volume's peak at ${p.curvePeakQps.toFixed(1)} QPS: fleets are sized for the peak given)`,
    );
  }
  out.push('  fleet      per region   total   per region if one region is lost   static $/month   following $/month');
  for (const f of p.fleets) {
    out.push(
      `  ${f.gpuType.padEnd(10)} ${String(f.gpusPerRegion).padStart(10)} ${String(f.gpus).padStart(7)} ${String(f.gpusPerRegionSurvivingOneLoss).padStart(35)} ${usd(f.staticUsdPerMonth).padStart(16)} ${usd(f.followingUsdPerMonth).padStart(19)}`,
    );
  }
  out.push(
    `  total ${p.gpus} GPUs at peak; ${usd(p.staticUsdPerMonth)} a month sized for the peak, ${usd(p.followingUsdPerMonth)} following the day's curve`,
  );
  for (const m of milestones(p)) {
    out.push('', `Milestone ${m.name}${p.dailyImages >= m.dailyImages ? ' (this plan is at or past it)' : ''}`);
    for (const item of m.items) out.push(`  [${item.state.padEnd(9)}] ${item.item}: ${item.note}`);
  }
  process.stdout.write(`${out.join('\n')}\n`);
}

function main(argv: string[]): number {
  try {
    const { values } = parseArgs({
      args: argv,
      strict: true,
      options: {
        'daily-images': { type: 'string' },
        'peak-qps': { type: 'string' },
        regions: { type: 'string' },
        utilization: { type: 'string' },
        help: { type: 'boolean' },
      },
    });
    if (values.help) {
      process.stdout.write(HELP);
      return 0;
    }
    const regions = positive('regions', values.regions, 3, 50);
    if (!Number.isInteger(regions)) throw new TypeError(`--regions ${regions}: expected a whole number`);
    const p = plan({
      dailyImages: positive('daily-images', values['daily-images']),
      ...(values['peak-qps'] !== undefined ? { peakQps: positive('peak-qps', values['peak-qps']) } : {}),
      regions,
      utilization: positive('utilization', values.utilization, 0.7, 1),
    });
    print(p);
    process.stdout.write(`${JSON.stringify({ bench: 'plan', ...p, milestones: milestones(p) })}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`npm run plan: ${err instanceof Error ? err.message : String(err)}\n${HELP}`);
    return 2;
  }
}

process.exitCode = main(process.argv.slice(2));
