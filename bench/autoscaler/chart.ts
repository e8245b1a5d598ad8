// The autoscaler day as a picture: three stacked panels over the window, hours UTC on the x axis: the arrival rate
// (per minute), each fleet's replicas under the policy with its static-peak size dashed, and each fleet's waiting
// turbo + fast requests under the policy. Hand-written SVG text: no dependency for one chart. Pure.
import type { MinuteSample, SimResult } from './run';
import { HOUR_MS, MINUTE_MS, SPIKE } from './traffic';

const WIDTH = 900;
const HEIGHT = 600;
const LEFT = 60;
const RIGHT = 100;
const TOP = 28;
const PANEL_H = 150;
const GAP = 42;
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#9467bd', '#ff7f0e'];

interface Line {
  readonly label: string;
  readonly color: string;
  readonly points: readonly (readonly [number, number])[];
  readonly dashed?: boolean;
}

interface Panel {
  readonly title: string;
  readonly unit: string;
  readonly lines: readonly Line[];
  /** Values above are drawn at the top (the spike would flatten the day's curve). */
  readonly clipAt?: number;
  /** log: log10(1 + value), so that a queue of 5 and one of 5,000 both show. */
  readonly log?: boolean;
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A round upper bound for an axis: 1, 2 or 5 times a power of ten, at least `max`. */
export function niceMax(max: number): number {
  if (!(max > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(max));
  return ([1, 2, 5, 10].find((m) => m * p >= max) ?? 10) * p;
}

function hourTicks(fromH: number, toH: number): number[] {
  const span = toH - fromH;
  const step = [1 / 12, 1 / 6, 0.25, 0.5, 1, 2, 3, 4, 6].find((s) => span / s <= 12) ?? 12;
  const out: number[] = [];
  for (let k = Math.ceil(fromH / step - 1e-9); k * step <= toH + 1e-9; k++) out.push(k * step);
  return out;
}

function hourLabel(h: number): string {
  const minutes = Math.round(h * 60);
  return `${String(Math.floor(minutes / 60) % 24).padStart(2, '0')}:${String(minutes % 60).padStart(2, '0')}`;
}

/** The values of the y axis's grid lines, and the position of a value from 0 (bottom) to 1 (top). */
function yAxis(panel: Panel): { ticks: number[]; at: (v: number) => number } {
  const max = Math.max(0, ...panel.lines.flatMap((l) => l.points.map(([, v]) => v)));
  if (panel.log) {
    const decades = Math.max(0, Math.ceil(Math.log10(Math.max(1, max))));
    const top = Math.log10(1 + 10 ** decades);
    const ticks = [0, ...Array.from({ length: decades + 1 }, (_, i) => 10 ** i)];
    return { ticks, at: (v) => Math.min(1, Math.log10(1 + Math.max(0, v)) / top) };
  }
  const ymax = niceMax(Math.min(max, panel.clipAt ?? Infinity));
  return { ticks: [0, 1, 2, 3, 4].map((i) => (ymax * i) / 4), at: (v) => Math.min(1, v / ymax) };
}

function panelSvg(panel: Panel, top: number, fromH: number, toH: number): string[] {
  const plotW = WIDTH - LEFT - RIGHT;
  const x = (h: number): number => LEFT + ((h - fromH) / (toH - fromH)) * plotW;
  const axis = yAxis(panel);
  const y = (v: number): number => top + PANEL_H - axis.at(v) * PANEL_H;
  const out = [`<text x="${LEFT}" y="${top - 8}" class="title">${esc(panel.title)}</text>`];
  for (const v of axis.ticks) {
    out.push(
      `<line x1="${LEFT}" x2="${LEFT + plotW}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" class="grid"/>`,
      `<text x="${LEFT - 6}" y="${(y(v) + 4).toFixed(1)}" class="axis" text-anchor="end">${v}</text>`,
    );
  }
  for (const h of hourTicks(fromH, toH)) {
    out.push(
      `<line x1="${x(h).toFixed(1)}" x2="${x(h).toFixed(1)}" y1="${top + PANEL_H}" y2="${top + PANEL_H + 4}" class="tick"/>`,
      `<text x="${x(h).toFixed(1)}" y="${top + PANEL_H + 16}" class="axis" text-anchor="middle">${hourLabel(h)}</text>`,
    );
  }
  out.push(`<rect x="${LEFT}" y="${top}" width="${plotW}" height="${PANEL_H}" class="frame"/>`);
  out.push(
    `<text x="${16}" y="${top + PANEL_H / 2}" class="axis" transform="rotate(-90 16 ${top + PANEL_H / 2})" ` +
      `text-anchor="middle">${esc(panel.unit)}</text>`,
  );
  panel.lines.forEach((l, i) => {
    const pts = l.points.map(([h, v]) => `${x(h).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    const dash = l.dashed ? ' stroke-dasharray="5 4"' : '';
    out.push(`<polyline points="${pts}" fill="none" stroke="${l.color}" stroke-width="1.4"${dash}/>`);
    const ly = top + 12 + i * 15;
    out.push(
      `<line x1="${WIDTH - RIGHT + 10}" x2="${WIDTH - RIGHT + 28}" y1="${ly - 4}" y2="${ly - 4}" stroke="${l.color}" ` +
        `stroke-width="2"${dash}/>`,
      `<text x="${WIDTH - RIGHT + 32}" y="${ly}" class="legend">${esc(l.label)}</text>`,
    );
  });
  return out;
}

/** The arrivals panel: per-minute QPS, cut off above 1.5x the curve's peak so the spike does not flatten the day. */
function arrivalsPanel(result: SimResult): Panel {
  const qps: [number, number][] = [...result.arrivalsPerMinute].map((n, i) => [
    (result.options.fromMs + (i + 0.5) * MINUTE_MS) / HOUR_MS,
    n / 60,
  ]);
  const inSpike = (h: number): boolean =>
    h * HOUR_MS >= SPIKE.startMs && h * HOUR_MS < SPIKE.startMs + SPIKE.durationMs;
  const curvePeak = Math.max(0, ...qps.filter(([h]) => !inSpike(h)).map(([, q]) => q));
  const spikePeak = Math.max(0, ...qps.map(([, q]) => q));
  const clipAt = curvePeak > 0 ? curvePeak * 1.5 : Infinity;
  return {
    title:
      spikePeak > clipAt
        ? `Arrivals (requests/s, per minute; the spike, up to ${Math.round(spikePeak)}, is cut off)`
        : 'Arrivals (requests/s, per minute)',
    unit: 'QPS',
    lines: [{ label: 'arrivals', color: '#333', points: qps }],
    clipAt,
  };
}

/** The policy run's replicas (with the static-peak sizes dashed) and interactive queues, per fleet. */
function policyPanels(result: SimResult): Panel[] {
  const policy = result.runs.find((r) => r.name === 'policy') ?? result.runs.at(-1);
  const minutes = policy?.minutes ?? [];
  const color = (i: number): string => COLORS[i % COLORS.length] ?? '#000';
  const perFleet = (pick: (m: MinuteSample, i: number) => number): Line[] =>
    result.fleetTypes.map((g, i) => ({
      label: g,
      color: color(i),
      points: minutes.map((m) => [m.atMs / HOUR_MS, pick(m, i)] as const),
    }));
  const statics: Line[] = result.fleetTypes.map((g, i) => ({
    label: `${g} static`,
    color: color(i),
    dashed: true,
    points: [
      [result.options.fromMs / HOUR_MS, result.peak.get(g) ?? 0],
      [result.options.toMs / HOUR_MS, result.peak.get(g) ?? 0],
    ],
  }));
  return [
    {
      title: `Replicas per fleet under the policy (dashed: static-peak)`,
      unit: 'workers',
      lines: [...perFleet((m, i) => m.replicas[i] ?? 0), ...statics],
    },
    {
      title: 'Waiting turbo + fast requests per fleet under the policy (log scale)',
      unit: 'requests',
      lines: perFleet((m, i) => m.queue[i] ?? 0),
      log: true,
    },
  ];
}

/** The chart of the policy run (and static-peak sizes for reference). */
export function autoscalerChart(result: SimResult): string {
  const fromH = result.options.fromMs / HOUR_MS;
  const toH = result.options.toMs / HOUR_MS;
  const panels = [arrivalsPanel(result), ...policyPanels(result)];
  const body = panels.flatMap((p, i) => panelSvg(p, TOP + i * (PANEL_H + GAP), fromH, toH));
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" ` +
      `font-family="sans-serif">`,
    '<style>.title{font-size:13px;font-weight:bold}.axis{font-size:10px;fill:#444}.legend{font-size:11px}' +
      '.grid{stroke:#e4e4e4}.tick{stroke:#666}.frame{fill:none;stroke:#888}</style>',
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="#fff"/>`,
    ...body,
    `<text x="${WIDTH - RIGHT}" y="${HEIGHT - 6}" class="axis" text-anchor="end">hours UTC, seed ${result.options.seed}</text>`,
    '</svg>',
    '',
  ].join('\n');
}
