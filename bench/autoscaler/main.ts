// `npm run simulate:autoscaler` (issue 13, item 3): a day of seed 001's traffic, spike included, on three ways of
// sizing the GPU fleets (static peak, the time-of-day schedule alone, the full policy of core/autoscale.ts), to
// price the policy against its targets. A discrete-event simulation, no services: it prints the figures, writes the
// chart, and ends with one JSON line on stdout, like the other benches.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { autoscalerChart } from './chart';
import { allFigures, checks } from './figures';
import { HELP, parseSimulateOptions, windowMs, type SimulateOptions } from './options';
import { autoscalerReport, formatAutoscaler } from './report';
import { simulate } from './run';

const say = (line: string): void => void process.stderr.write(`[simulate:autoscaler] ${line}\n`);

function main(argv: string[]): number {
  let options: SimulateOptions | undefined;
  try {
    options = parseSimulateOptions(argv);
  } catch (err) {
    say(`${err instanceof Error ? err.message : String(err)} (see --help)`);
    return 2;
  }
  if (!options) {
    process.stdout.write(HELP);
    return 0;
  }
  const started = performance.now();
  const result = simulate({ seed: options.seed, admissionBoundsMs: options.admissionBoundsMs, ...windowMs(options) });
  say(`simulated ${result.runs.length} strategies in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const figures = allFigures(result);
  const report = autoscalerReport(result, figures, checks(result, figures));
  if (options.out !== '') {
    mkdirSync(dirname(options.out), { recursive: true });
    writeFileSync(options.out, autoscalerChart(result));
    say(`chart: ${options.out}`);
  }
  process.stdout.write(`\n${formatAutoscaler(report)}\n`);
  process.stdout.write(`${JSON.stringify(report)}\n`);
  return figures.every((f) => f.left_behind === 0) ? 0 : 1;
}

process.exitCode = main(process.argv.slice(2));
