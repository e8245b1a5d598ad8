// The autoscaler day's JSON line and its human summary: the same figures, the summary laid out to be read, with the
// modelling assumptions stated next to the numbers they produce. Pure.
import { TIERS, type Tier } from '../../core/tiers';
import { DEFAULT_ADMISSION_BOUNDS_MS } from './fleet';
import {
  FAST_WAIT_TARGET_S,
  SPOT_RATIO,
  TURBO_WAIT_TARGET_S,
  type Check,
  type FleetFigures,
  type StrategyFigures,
} from './figures';
import { SPIKE_AFTERMATH_MS, TICK_MS, type SimResult } from './run';
import { FORECAST_AHEAD_MS, PROVISION_MS, STATIC_TARGET_UTILIZATION, WEIGHTS_GB_PER_S } from './strategies';
import { HOUR_MS, SPIKE, TIER_SHARES, VARIANTS } from './traffic';

const hourLabel = (ms: number): string =>
  `${String(Math.floor(ms / HOUR_MS)).padStart(2, '0')}:${String(Math.round((ms % HOUR_MS) / 60_000)).padStart(2, '0')}`;

export function assumptions(result: SimResult) {
  return {
    tick_s: TICK_MS / 1000,
    static_target_utilization: STATIC_TARGET_UTILIZATION,
    provision_s: PROVISION_MS / 1000,
    weights_gb_per_s: WEIGHTS_GB_PER_S,
    forecast_ahead_min: FORECAST_AHEAD_MS / 60_000,
    relax_spot_ratio: SPOT_RATIO,
    fast_wait_target_s: FAST_WAIT_TARGET_S,
    turbo_wait_target_s: TURBO_WAIT_TARGET_S,
    admission_wait_bound_s: Object.fromEntries(
      TIERS.map((t, i) => [t, (result.options.admissionBoundsMs ?? DEFAULT_ADMISSION_BOUNDS_MS)[i]! / 1000]),
    ) as Record<Tier, number>,
    calm_excludes: `arrivals ${hourLabel(SPIKE.startMs)}-${hourLabel(SPIKE.startMs + SPIKE_AFTERMATH_MS)}`,
    spike: { at_h: SPIKE.startMs / HOUR_MS, duration_s: SPIKE.durationMs / 1000, multiplier: SPIKE.multiplier },
    tier_shares: TIER_SHARES,
    mix: VARIANTS.map((x) => ({ variant: x.label, share: Math.round(x.share * 1000) / 1000 })),
    fleets: Object.fromEntries(
      result.fleetTypes.map((g) => {
        const load = result.loads.get(g);
        return [
          g,
          {
            request_share: Math.round((load?.share ?? 0) * 1000) / 1000,
            mean_gpu_s_per_request: Math.round((load?.meanServiceS ?? 0) * 1000) / 1000,
            peak_replicas: result.peak.get(g) ?? 0,
            cold_start_s: Math.round((result.coldStart.get(g) ?? 0) / 100) / 10,
          },
        ];
      }),
    ),
  };
}

export function autoscalerReport(result: SimResult, figures: readonly StrategyFigures[], checks: readonly Check[]) {
  const o = result.options;
  return {
    bench: 'autoscaler',
    seed: o.seed,
    from_h: o.fromMs / HOUR_MS,
    to_h: o.toMs / HOUR_MS,
    assumptions: assumptions(result),
    strategies: figures,
    checks,
    pass: checks.every((c) => c.pass),
  };
}

export type AutoscalerReport = ReturnType<typeof autoscalerReport>;

const pad = (x: unknown, n: number): string => String(x ?? '-').padStart(n);
const pct = (x: number | null): string => (x === null ? '-' : `${(x * 100).toFixed(3)}%`);
const usd = (x: number): string => `$${x.toFixed(0)}`;

function fleetLines(fleets: readonly FleetFigures[]): string[] {
  const head = `  ${'fleet'.padEnd(6)}${pad('size', 9)}${pad('GPU-h', 8)}${pad('turbo/fast/relax busy GPU-h', 29)}`;
  const lines = [`${head}${pad('idle', 7)}${pad('cost', 8)}${pad('spot', 6)}${pad('up/down', 9)}${pad('cooldown', 9)}`];
  for (const f of fleets) {
    const b = f.busy_gpu_hours;
    lines.push(
      `  ${f.gpu.padEnd(6)}${pad(`${f.min_replicas}-${f.max_replicas}`, 9)}${pad(f.gpu_hours, 8)}` +
        `${pad(`${b.turbo} / ${b.fast} / ${b.relax}`, 29)}${pad(f.idle_gpu_hours, 7)}${pad(usd(f.cost_usd), 8)}` +
        `${pad(usd(f.usd_by_use.relax), 6)}${pad(`${f.scale_ups}/${f.scale_downs}`, 9)}${pad(f.steps_inside_cooldown, 9)}`,
    );
    const u = f.usd_by_use;
    lines.push(
      `         cost by use: turbo ${usd(u.turbo)}, fast ${usd(u.fast)}, relax ${usd(u.relax)} (spot), ` +
        `idle/warm-up/drain ${usd(u.idle)}`,
    );
    const causes = Object.entries(f.causes);
    if (causes.length > 0) lines.push(`         steps by cause: ${causes.map(([c, n]) => `${c} ${n}`).join(', ')}`);
    for (const t of TIERS) {
      const x = f.tiers[t];
      if (x.accepted + x.rejected === 0) continue;
      lines.push(
        `         ${t.padEnd(6)} accepted ${x.accepted}, rejected ${x.rejected}, wait p50/p99/max ` +
          `${x.wait_p50_s}/${x.wait_p99_s}/${x.wait_max_s} s${x.slo_share === null ? '' : `, SLO ${pct(x.slo_share)}`}`,
      );
    }
  }
  return lines;
}

function strategyLines(s: StrategyFigures): string[] {
  const lines = [
    `== ${s.strategy}: ${usd(s.cost_usd)} for the window, ${s.gpu_hours} GPU-h, pool at most ${s.pool_max_replicas}, ` +
      `${s.scale_ups} ups / ${s.scale_downs} downs, ${s.steps_inside_cooldown} inside cooldown (${s.wall_ms} ms)`,
    ...fleetLines(s.fleets),
    `  ${'tier'.padEnd(6)}${pad('accepted', 10)}${pad('rejected', 10)}${pad('p50 s', 8)}${pad('p99 s', 8)}` +
      `${pad('max s', 8)}${pad('SLO', 9)}${pad('calm p99', 10)}${pad('calm SLO', 10)}`,
  ];
  for (const t of TIERS) {
    const x = s.tiers[t];
    lines.push(
      `  ${t.padEnd(6)}${pad(x.accepted, 10)}${pad(x.rejected, 10)}${pad(x.wait_p50_s, 8)}${pad(x.wait_p99_s, 8)}` +
        `${pad(x.wait_max_s, 8)}${pad(pct(x.slo_share), 9)}${pad(x.calm_wait_p99_s, 10)}` +
        `${pad(pct(x.calm_slo_share), 10)}`,
    );
  }
  return lines;
}

export function formatAutoscaler(r: AutoscalerReport): string {
  const a = r.assumptions;
  const lines = [
    `Autoscaler day (issue 13): seed ${r.seed}, ${r.from_h}:00-${r.to_h}:00 UTC, ` +
      `${r.strategies[0]?.arrivals ?? 0} arrivals, the same for every strategy`,
    `Assumptions: tick ${a.tick_s} s; static fleet at ${a.static_target_utilization * 100}% duty at the peak hour; ` +
      `cold start ${a.provision_s} s + weights at ${a.weights_gb_per_s} GB/s; policy forecasts ` +
      `${a.forecast_ahead_min} min ahead from busy GPUs along the day's profile (blind to the spike); relax GPU time at ${a.relax_spot_ratio} x on-demand (spot); ` +
      `admission bounds turbo/fast/relax ${a.admission_wait_bound_s.turbo}/${a.admission_wait_bound_s.fast}/` +
      `${a.admission_wait_bound_s.relax} s of queued work per ready worker`,
    `Spike: ${a.spike.multiplier}x from ${a.spike.at_h}:00 for ${a.spike.duration_s} s. ` +
      `SLO: fast < ${a.fast_wait_target_s} s, turbo < ${a.turbo_wait_target_s} s queue wait, over accepted requests ` +
      `(calm: the same without the ${a.calm_excludes})`,
    `Mix: ${a.mix.map((m) => `${m.variant} ${(m.share * 100).toFixed(1)}%`).join(', ')}; tiers turbo/fast/relax ` +
      `${a.tier_shares.turbo}/${a.tier_shares.fast}/${a.tier_shares.relax}`,
    ...Object.entries(a.fleets).map(
      ([g, f]) =>
        `  ${g.padEnd(5)} ${(f.request_share * 100).toFixed(1)}% of requests, ${f.mean_gpu_s_per_request} GPU-s per ` +
        `request (modelled), static peak ${f.peak_replicas} workers, cold start ${f.cold_start_s} s`,
    ),
    '',
  ];
  for (const s of r.strategies) lines.push(...strategyLines(s), '');
  lines.push('== comparison (cost over the window; a 24 h window is dollars per day)');
  for (const s of r.strategies) {
    lines.push(
      `  ${s.strategy.padEnd(19)}${pad(usd(s.cost_usd), 9)}${pad(`${s.cost_ratio_to_static ?? '-'}x`, 8)} of static` +
        `   fast SLO ${pct(s.tiers.fast.slo_share)} (calm ${pct(s.tiers.fast.calm_slo_share)}, ` +
        `of arrivals ${pct(s.tiers.fast.slo_share_of_arrivals)}), ` +
        `turbo SLO ${pct(s.tiers.turbo.slo_share)} (calm ${pct(s.tiers.turbo.calm_slo_share)}), ` +
        `rejected ${s.tiers.turbo.rejected}/${s.tiers.fast.rejected}/${s.tiers.relax.rejected}`,
    );
  }
  lines.push('== checks');
  for (const c of r.checks) {
    lines.push(`  ${c.pass ? 'PASS' : 'FAIL'} ${c.name.padEnd(44)} ${String(c.value)} (target ${c.target})`);
  }
  return lines.join('\n');
}
