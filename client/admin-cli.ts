// `npm run admin -- <command>`: the operators' command over the gateway's admin API (gateway/admin.ts).
//
//   npm run admin -- workers                              live GPU workers, paused fleets, replacement reports
//   npm run admin -- regions                              every region's health as the gateway sees it
//   npm run admin -- pause fleet a10g [--region us-west]  the fleet finishes what it holds and takes nothing new
//   npm run admin -- resume fleet a10g                    it takes work again
//   npm run admin -- drain fleet a10g                     each of its live workers finishes and exits
//   npm run admin -- pause|resume|drain worker <workerId>
//   npm run admin -- keys                                 API keys and their plans (never their secrets)
//   npm run admin -- keys create <userId> [--tiers fast,relax] [--rate 100] [--max-in-flight 50] [--weight 1]
//   npm run admin -- keys rotate|revoke <keyId>
//   npm run admin -- token --user <userId> [--ttl 1h] [plan options]   a JWT for development, signed here
//
// The gateway and token come from --url/--token, else ATELIER_ADMIN_URL/ATELIER_ADMIN_TOKEN, else the stack.json of
// a stack started by `npm start` (in ATELIER_DATA_DIR, default .atelier). Exit status: 0 done, 1 refused by the
// gateway, 2 bad usage, 3 gateway unreachable. `token` needs no gateway: it signs with the first of ATELIER_JWT_SECRETS
// (and sets ATELIER_JWT_ISSUER/AUDIENCE when given), as the gateway it is meant for is configured.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { DEFAULT_PLAN } from '../core/plans';
import { resolveOptions } from '../runtime/options';
import { JWT_OPTION_TABLE, signJwt } from '../gateway/jwt-auth';

export const ADMIN_EXIT = { OK: 0, REFUSED: 1, USAGE: 2, UNREACHABLE: 3 } as const;

const USAGE = `Usage: npm run admin -- <command>

Commands:
  workers                                 list live GPU workers, paused fleets and replacement reports
  regions                                 every region's health: control workers, gateways, ready GPU workers
  pause  fleet <gpuType> [--region <r>]   the fleet finishes what it holds and takes nothing new
  resume fleet <gpuType> [--region <r>]   the fleet takes work again
  drain  fleet <gpuType> [--region <r>]   each live worker of the fleet finishes what it holds and exits
  pause|resume|drain worker <workerId>    the same for one worker
  keys                                    list API keys and their plans
  keys create <userId> [plan options]     a new key (its secret is printed once)
  keys rotate <keyId>                     a new secret for the key; the old one stops working at once
  keys revoke <keyId>                     the key stops working at once
  token --user <userId> [--ttl <d>]       a JWT bearer token signed here with the first of $ATELIER_JWT_SECRETS
                                          (--ttl: seconds or 30m, 1h, 1d; default 1h; plan options as keys create)

Options:
  --url <http-url>    gateway (default: $ATELIER_ADMIN_URL, else the running stack's stack.json)
  --token <token>     admin token (default: $ATELIER_ADMIN_TOKEN, else stack.json)
  --region <region>   region of a fleet order (default: the gateway's)

Plan options of keys create and token (unset: the default plan, fast and relax, 100/min, 50 in flight, weight 1):
  --tiers <list>  --rate <per minute>  --max-in-flight <n>  --weight <fairness weight>
`;

const StackFileSchema = z.object({ gateway: z.object({ httpUrl: z.string(), adminToken: z.string() }) });

class UsageError extends Error {}

async function endpoint(values: { url?: string; token?: string }): Promise<{ url: string; token: string }> {
  let url = values.url ?? process.env.ATELIER_ADMIN_URL;
  let token = values.token ?? process.env.ATELIER_ADMIN_TOKEN;
  if (!url || !token) {
    const file = path.join(process.env.ATELIER_DATA_DIR ?? '.atelier', 'stack.json');
    const raw = await readFile(file, 'utf8').catch(() => undefined);
    if (raw === undefined) throw new UsageError(`No --url/--token, and no running stack (${file} is missing)`);
    const stack = StackFileSchema.parse(JSON.parse(raw));
    url ??= stack.gateway.httpUrl;
    token ??= stack.gateway.adminToken;
  }
  return { url: url.replace(/\/+$/, ''), token };
}

export interface PlanFlags {
  readonly region?: string;
  readonly tiers?: string;
  readonly rate?: string;
  readonly 'max-in-flight'?: string;
  readonly weight?: string;
}

/** The plan fields given on the command line; the gateway validates them and fills the rest. */
function planFromFlags(flags: PlanFlags): Record<string, unknown> {
  const number = (name: keyof PlanFlags): number | undefined => {
    const raw = flags[name];
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (!Number.isFinite(n)) throw new UsageError(`--${name} ${raw}: not a number`);
    return n;
  };
  const plan = {
    tiers: flags.tiers?.split(',').map((t) => t.trim()),
    ratePerMinute: number('rate'),
    maxInFlight: number('max-in-flight'),
    fairnessWeight: number('weight'),
  };
  return Object.fromEntries(Object.entries(plan).filter(([, v]) => v !== undefined));
}

function keysRequest(positionals: readonly string[], flags: PlanFlags): AdminRequest {
  const [, verb, target] = positionals;
  if (verb === undefined) return { method: 'GET', path: '/admin/keys' };
  if (verb === 'create' && target && positionals.length === 3) {
    return { method: 'POST', path: '/admin/keys', body: { userId: target, plan: planFromFlags(flags) } };
  }
  if (verb === 'rotate' && target && positionals.length === 3) {
    return { method: 'POST', path: `/admin/keys/${encodeURIComponent(target)}/rotate` };
  }
  if (verb === 'revoke' && target && positionals.length === 3) {
    return { method: 'DELETE', path: `/admin/keys/${encodeURIComponent(target)}` };
  }
  throw new UsageError(`Unknown command: ${positionals.join(' ')}`);
}

export interface AdminRequest {
  readonly method: 'GET' | 'POST' | 'DELETE';
  readonly path: string;
  readonly body?: unknown;
}

/** The method, path and body of a command, or a UsageError. */
export function adminRequest(positionals: readonly string[], flags: PlanFlags = {}): AdminRequest {
  const region = flags.region;
  if (positionals[0] === 'keys') return keysRequest(positionals, flags);
  const [order, kind, target] = positionals;
  if (order === 'workers' && positionals.length === 1) return { method: 'GET', path: '/admin/workers' };
  if (order === 'regions' && positionals.length === 1) return { method: 'GET', path: '/admin/regions' };
  if (!['pause', 'resume', 'drain'].includes(order ?? '') || !target || positionals.length !== 3) {
    throw new UsageError(`Unknown command: ${positionals.join(' ') || '(none)'}`);
  }
  if (kind === 'fleet') {
    const query = region ? `?region=${encodeURIComponent(region)}` : '';
    return { method: 'POST', path: `/admin/fleets/${encodeURIComponent(target)}/${order}${query}` };
  }
  if (kind === 'worker') return { method: 'POST', path: `/admin/workers/${encodeURIComponent(target)}/${order}` };
  throw new UsageError(`Expected "fleet" or "worker", got ${kind ?? '(none)'}`);
}

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        url: { type: 'string' },
        token: { type: 'string' },
        region: { type: 'string' },
        tiers: { type: 'string' },
        rate: { type: 'string' },
        'max-in-flight': { type: 'string' },
        weight: { type: 'string' },
        user: { type: 'string' },
        ttl: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    return ADMIN_EXIT.USAGE;
  }
  if (parsed.values.help) {
    process.stdout.write(USAGE);
    return ADMIN_EXIT.OK;
  }
  if (parsed.positionals[0] === 'token') return printToken(parsed.positionals, parsed.values);
  let request;
  let target;
  try {
    request = adminRequest(parsed.positionals, parsed.values);
    target = await endpoint(parsed.values);
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n\n${USAGE}`);
    return ADMIN_EXIT.USAGE;
  }
  let res: Response;
  try {
    res = await fetch(`${target.url}${request.path}`, {
      method: request.method,
      headers: {
        authorization: `Bearer ${target.token}`,
        ...(request.body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(request.body !== undefined ? { body: JSON.stringify(request.body) } : {}),
      signal: AbortSignal.timeout(15_000),
    });
  } catch (err) {
    process.stderr.write(`Gateway unreachable at ${target.url}: ${err instanceof Error ? err.message : String(err)}\n`);
    return ADMIN_EXIT.UNREACHABLE;
  }
  const body = await res.text();
  process.stdout.write(`${formatBody(body)}\n`);
  return res.ok ? ADMIN_EXIT.OK : ADMIN_EXIT.REFUSED;
}

/** `--ttl`: whole seconds, or a number of minutes, hours or days (`30m`, `1h`, `1d`). */
export function ttlSeconds(raw: string): number {
  const m = /^(\d{1,7})([smhd]?)$/.exec(raw.trim());
  if (!m) throw new UsageError(`--ttl ${raw}: expected seconds or a number with s, m, h or d`);
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[m[2] as '' | 's' | 'm' | 'h' | 'd'];
  return Number(m[1]) * unit;
}

/** `token`: prints a JWT for --user with the plan flags over DEFAULT_PLAN; the gateway is not asked. */
async function printToken(
  positionals: readonly string[],
  flags: PlanFlags & { user?: string; ttl?: string },
): Promise<number> {
  try {
    if (positionals.length !== 1 || flags.user === undefined) throw new UsageError('Usage: token --user <userId>');
    const options = resolveOptions(JWT_OPTION_TABLE, process.env);
    const plan = { ...DEFAULT_PLAN, ...planFromFlags(flags) } as typeof DEFAULT_PLAN;
    const token = await signJwt(options, { userId: flags.user, plan, ttlS: ttlSeconds(flags.ttl ?? '1h') });
    process.stdout.write(`${token}\n`);
    return ADMIN_EXIT.OK;
  } catch (err) {
    const message = err instanceof z.ZodError ? z.prettifyError(err) : err instanceof Error ? err.message : String(err);
    process.stderr.write(`${message}\n\n${USAGE}`);
    return ADMIN_EXIT.USAGE;
  }
}

function formatBody(body: string): string {
  try {
    return JSON.stringify(JSON.parse(body), null, 2);
  } catch {
    return body;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => (process.exitCode = code),
    (err: unknown) => {
      process.stderr.write(`admin failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
