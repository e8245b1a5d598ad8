// Command-line flags of `npm run bench:load`: what load to generate, against which stack, and the scenario the
// flags describe. No flags at all gives the default scenario (paced 10/s for 30 s, then a burst of 300).
import { parseArgs } from 'node:util';
import { GPU_TYPES, isGpuType } from '../../core/gpu';
import { MODELS, isModelName } from '../../core/models';
import { TIERS, isTier } from '../../core/tiers';
import type { ArrivalPattern } from './arrivals';
import {
  MIXED_DEFAULT_MIX,
  MIXED_HELP,
  MIXED_SIM_SPEEDUP,
  checkMixedFlags,
  mixFleet,
  mixedOptions,
  type MixedOptions,
} from './mixed-options';
import { TURBO_WAIT_BOUND_S, spikeOptions, type SpikeOptions } from './spike-options';

export const DEFAULT_STACK_FILE = '.atelier/stack.json';

/** One measured stretch of load, run once against the floor and once against Atelier. */
export interface Segment {
  readonly name: string;
  readonly pattern: ArrivalPattern;
}

export interface RequestMix {
  readonly models: readonly string[];
  readonly tiers: readonly string[];
  readonly sizes: readonly { readonly width: number; readonly height: number }[];
  readonly steps: readonly number[];
}

export interface LoadOptions {
  /** Path of the stack.json to attach to; undefined spawns a private stack. */
  readonly attach: string | undefined;
  readonly apiKeys: readonly string[] | undefined;
  readonly users: number;
  readonly connections: number;
  readonly segments: readonly Segment[];
  readonly mix: RequestMix;
  readonly seed: number;
  readonly simSpeedup: number;
  readonly gpuTypes: readonly string[];
  readonly timeoutMs: number;
  /** Requests of each kind run (and discarded) before the first measured segment. */
  readonly warmup: number;
  readonly quick: boolean;
  readonly keepData: boolean;
  /** Spawn mode: run the stack with Prometheus scraping it and traces exported (`on`), or without (`off`). */
  readonly observe: 'on' | 'off';
  /** `--profile spike`: the spike's settings (segments is then empty: spike.ts runs its own phases). */
  readonly spike: SpikeOptions | undefined;
  /** `--profile mixed`: its settings (segments is then empty: mixed.ts runs its own phases). */
  readonly mixed: MixedOptions | undefined;
}

export const HELP = `npm run bench:load [-- flags]   load benchmark: Atelier's gateway against a bare Temporal floor

Stack
  --attach [stack.json]    use a stack started by \`npm start\` (default ${DEFAULT_STACK_FILE}); without it a
                           private stack is spawned in a temporary directory and stopped at the end
  --api-key K[,K...]       attach mode: API keys to use (default: the stack's ATELIER_API_KEYS, else its dev key)
  --sim-speedup N          spawn mode: ATELIER_SIM_SPEEDUP of the GPU workers (default 1000)
  --gpu-types LIST         spawn mode: ATELIER_GPU_TYPES (default a10g,a100,a100-80gb,h100)
  --keep-data              spawn mode: keep the temporary data directory
  --observe on|off         spawn mode: with Prometheus scraping every process and OTLP traces exported to a sink
                           in the bench (on), or without either (off, the default): compare the two for the cost
                           of watching

Profile
  --profile standard|spike|mixed
                           standard (the default): the segments below, each against the floor and Atelier.
                           spike: measure the fleet's capacity (a calibration burst), then offer --multiplier
                           times it for --duration seconds from many users (default 50, tiers turbo,fast,relax),
                           with the gateway's production admission caps (spawn mode does not raise them), and
                           check: 0 lost, queues within the in-flight caps, every rejection a documented code
                           with retryAfterMs, turbo's queue wait bounded, every process ready and alive after
  --multiplier X           spike: offered rate over capacity (default 10)
  --duration S             spike, mixed: seconds of arrivals (default 60; --quick 10, mixed 15)
  --capacity R             spike, mixed: capacity in requests/s instead of measuring it
  --calibration-count N    spike, mixed: requests in the calibration burst (150, mixed 60; --quick 40, 20)
  --wait S                 spike: seconds a request may take after its send before it is lost (default: three
                           times what the fleet needs to serve the in-flight cap at capacity, plus 60)
  --turbo-wait-bound S     spike: turbo's queue wait p99 must stay within S (default ${TURBO_WAIT_BOUND_S}: its fleet wait)
${MIXED_HELP}
Clients
  --users N                simulated users, one API key each (default 4; spike 50, --quick 10; mixed: fast
                           users, 20, --quick 6)
  --connections N          WebSocket connections, spread over the users (default 8)

Arrivals (no --pattern: paced --rate for --duration, then a burst of --count)
  --pattern paced|burst|step
  --rate R                 paced: requests per second (default 10)
  --duration S             paced: seconds (default 30)
  --count N                burst: requests at once (default 300); paced: total instead of --duration
  --steps R1,R2,...        step: rising rates (default 5,10,20,40)
  --step-seconds S         step: seconds per rate (default 10)

Requests (each request picks one of each list with a seeded RNG)
  --models LIST            default sdxl-turbo (${Object.keys(MODELS).join(', ')})
  --tiers LIST             default fast, spike turbo,fast,relax (${TIERS.join(', ')})
  --sizes LIST             default 512x512
  --steps-per-image LIST   default 1
  --seed N                 RNG seed (default 1)

Run
  --timeout S              a request without a terminal event this long after sending is lost (default 120)
  --warmup N               unmeasured requests of each kind before the first segment (default 10)
  --quick                  short smoke run (paced 5/s for 4 s, burst of 40)
  --help

Progress goes to stderr; the summary and then one JSON line (the last line) to stdout. The spike and mixed
profiles exit 1 when one of their checks fails.
`;

const FLAGS = {
  attach: { type: 'string' },
  'api-key': { type: 'string' },
  'sim-speedup': { type: 'string' },
  'gpu-types': { type: 'string' },
  'keep-data': { type: 'boolean' },
  observe: { type: 'string' },
  users: { type: 'string' },
  connections: { type: 'string' },
  pattern: { type: 'string' },
  rate: { type: 'string' },
  duration: { type: 'string' },
  count: { type: 'string' },
  steps: { type: 'string' },
  'step-seconds': { type: 'string' },
  models: { type: 'string' },
  tiers: { type: 'string' },
  sizes: { type: 'string' },
  'steps-per-image': { type: 'string' },
  seed: { type: 'string' },
  timeout: { type: 'string' },
  warmup: { type: 'string' },
  quick: { type: 'boolean' },
  profile: { type: 'string' },
  multiplier: { type: 'string' },
  capacity: { type: 'string' },
  'calibration-count': { type: 'string' },
  wait: { type: 'string' },
  'turbo-wait-bound': { type: 'string' },
  'fast-load': { type: 'string' },
  'relax-flood': { type: 'string' },
  'relax-users': { type: 'string' },
  'flood-rate': { type: 'string' },
  drain: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof FLAGS }>>['values'];

/** Returns undefined when --help was asked for. Throws a TypeError naming the flag on bad input. */
export function parseLoadOptions(argv: readonly string[]): LoadOptions | undefined {
  const { values } = parseArgs({ args: withAttachDefault(argv), options: FLAGS, strict: true });
  if (values.help) return undefined;
  const quick = values.quick ?? false;
  const num = (flag: keyof Values, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number =>
    parseNumber(flag, values[flag], fallback, min, max);
  const chosen = profile(values);
  const spike = chosen === 'spike';
  const mixed = chosen === 'mixed';
  const users = whole('users', num('users', spike ? (quick ? 10 : 50) : mixed ? (quick ? 6 : 20) : 4, 1, 10_000));
  const connections = whole('connections', num('connections', Math.max(users, 8), 1, 10_000));
  const mix = requestMix(values, chosen);
  const given = (flag: string): boolean => values[flag as keyof Values] !== undefined;
  return {
    attach: values.attach,
    apiKeys: values['api-key'] === undefined ? undefined : list(values['api-key']),
    users,
    connections,
    segments: spike || mixed ? [] : segments(values, quick),
    mix,
    seed: whole('seed', num('seed', 1, 0, 0xffff_ffff)),
    simSpeedup: num('sim-speedup', mixed ? MIXED_SIM_SPEEDUP : 1000, 0.001),
    // The mixed profile loads one fleet: the other fleets' workers would only take CPU from the stack.
    gpuTypes: gpuTypes(values['gpu-types'] ?? (mixed ? mixFleet(mix) : undefined)),
    timeoutMs: num('timeout', quick ? 60 : 120, 1) * 1000,
    warmup: whole('warmup', num('warmup', quick ? 3 : 10, 0, 10_000)),
    quick,
    keepData: values['keep-data'] ?? false,
    observe: observeMode(values.observe),
    spike: spike
      ? spikeOptions(quick, (flag, fallback, min, max) => num(flag as keyof Values, fallback, min, max), given)
      : undefined,
    mixed: mixed
      ? mixedOptions(quick, (flag, fallback, min, max) => num(flag as keyof Values, fallback, min, max), given)
      : undefined,
  };
}

type Profile = 'standard' | 'spike' | 'mixed';

function profile(values: Values): Profile {
  const raw = values.profile ?? 'standard';
  if (raw !== 'standard' && raw !== 'spike' && raw !== 'mixed') {
    throw new TypeError(`--profile ${raw}: expected standard, spike or mixed`);
  }
  if (raw === 'spike' && (values.pattern !== undefined || values.count !== undefined || values.rate !== undefined)) {
    throw new TypeError('--profile spike sets its own arrivals: use --multiplier, --duration or --capacity');
  }
  checkMixedFlags(raw === 'mixed', (flag) => values[flag as keyof Values] !== undefined);
  return raw;
}

function observeMode(raw: string | undefined): 'on' | 'off' {
  if (raw === undefined || raw === 'off') return 'off';
  if (raw === 'on') return 'on';
  throw new TypeError(`--observe ${JSON.stringify(raw)}: expected on or off`);
}

/** `--attach` may stand alone; parseArgs has no optional values, so give it the default path explicitly. */
function withAttachDefault(argv: readonly string[]): string[] {
  const out: string[] = [];
  argv.forEach((arg, i) => {
    const next = argv[i + 1];
    out.push(
      arg === '--attach' && (next === undefined || next.startsWith('--')) ? `--attach=${DEFAULT_STACK_FILE}` : arg,
    );
  });
  return out;
}

function segments(values: Values, quick: boolean): Segment[] {
  const num = (flag: keyof Values, fallback: number, min: number): number =>
    parseNumber(flag, values[flag], fallback, min, 1e9);
  const rate = num('rate', quick ? 5 : 10, 0.001);
  const count = values.count === undefined ? undefined : whole('count', num('count', 0, 1));
  const paced = (): ArrivalPattern =>
    count !== undefined && values.pattern === 'paced'
      ? { kind: 'paced', rate, count }
      : { kind: 'paced', rate, count: Math.max(1, Math.round(rate * num('duration', quick ? 4 : 30, 0.001))) };
  const burst = (): ArrivalPattern => ({ kind: 'burst', count: count ?? (quick ? 40 : 300) });
  switch (values.pattern) {
    case undefined:
      return [
        { name: 'rate', pattern: paced() },
        { name: 'burst', pattern: burst() },
      ];
    case 'paced':
      return [{ name: 'paced', pattern: paced() }];
    case 'burst':
      return [{ name: 'burst', pattern: burst() }];
    case 'step': {
      const rates = (values.steps === undefined ? [5, 10, 20, 40] : list(values.steps)).map((r) =>
        parseNumber('steps', r, 0, 0.001, 1e6),
      );
      const stepSeconds = num('step-seconds', quick ? 2 : 10, 0.001);
      return [{ name: 'step', pattern: { kind: 'step', rates, stepSeconds } }];
    }
    default:
      throw new TypeError(`--pattern ${values.pattern}: expected paced, burst or step`);
  }
}

function requestMix(values: Values, chosen: Profile): RequestMix {
  const mixed = chosen === 'mixed';
  const models = list(values.models ?? (mixed ? MIXED_DEFAULT_MIX.models : 'sdxl-turbo'));
  for (const m of models) if (!isModelName(m)) throw new TypeError(`--models: unknown model ${m}`);
  // The spike mixes every tier: turbo's queue wait beside the others' is one of its figures.
  const tiers = list(values.tiers ?? (chosen === 'spike' ? 'turbo,fast,relax' : mixed ? 'fast,relax' : 'fast'));
  for (const t of tiers) if (!isTier(t)) throw new TypeError(`--tiers: unknown tier ${t}`);
  const sizes = list(values.sizes ?? (mixed ? MIXED_DEFAULT_MIX.sizes : '512x512')).map((s) => {
    const match = /^(\d+)x(\d+)$/.exec(s);
    if (!match) throw new TypeError(`--sizes: ${s} is not WIDTHxHEIGHT`);
    return { width: Number(match[1]), height: Number(match[2]) };
  });
  const steps = list(values['steps-per-image'] ?? (mixed ? MIXED_DEFAULT_MIX.steps : '1')).map((s) =>
    whole('steps-per-image', parseNumber('steps-per-image', s, 0, 1, 1000)),
  );
  return { models, tiers, sizes, steps };
}

function gpuTypes(raw: string | undefined): string[] {
  const types = list(raw ?? 'a10g,a100,a100-80gb,h100');
  for (const t of types) {
    if (!isGpuType(t)) throw new TypeError(`--gpu-types: unknown GPU type ${t}; known: ${GPU_TYPES.join(', ')}`);
  }
  return types;
}

function list(raw: string): string[] {
  const items = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (items.length === 0) throw new TypeError(`empty list: ${JSON.stringify(raw)}`);
  return items;
}

function parseNumber(flag: string, raw: unknown, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(value) || value < min || value > max) {
    throw new TypeError(`--${flag} ${String(raw)}: expected a number between ${min} and ${max}`);
  }
  return value;
}

function whole(flag: string, value: number): number {
  if (!Number.isInteger(value)) throw new TypeError(`--${flag} ${value}: expected a whole number`);
  return value;
}
