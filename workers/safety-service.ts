// The safety service: the `rules-v1` prompt screen served over HTTP, the process that control workers with
// ATELIER_SAFETY_URL ask (activities/safety-http.ts). It stands where seed 001's model-based Safety API stands, so the
// pipeline can lose its safety screen for real (the chaos experiment `safety_outage` stops this process under load)
// and a model-based screen can later replace it behind the same contract.
//
//   node dist/workers/safety-service.js [--help]
//
//   POST /v1/screen  {"prompt": "..."}  -> 200 {"allowed": bool, "categories": [...], "screen": "rules-v1"}
//   GET  /healthz                       -> 200 {"ok": true, "screen": "rules-v1"}
//
// Errors are JSON {"error": CODE, "message": "..."}: 400 BAD_JSON (the body is not JSON), 400 INVALID_REQUEST (no
// `prompt` string of 1 to 2000 characters; `details` says what is wrong), 413 BODY_TOO_LARGE (above 64 KiB),
// 415 UNSUPPORTED_MEDIA_TYPE (not application/json), 405 METHOD_NOT_ALLOWED, 404 NOT_FOUND.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { RulesPromptScreen, type PromptScreen } from '../activities/safety';
import { PROMPT_MAX_CHARS } from '../core/request';
import { createLogger, type Logger } from '../runtime/logger';
import { formatOptionHelp, parse, resolveOptions, type OptionTable } from '../runtime/options';
import { SHARED_OPTION_TABLE } from '../runtime/shared-options';
// Not worker-runtime: a process with no Temporal worker has no reason to load the Temporal SDK.
import { closeServer } from './health-server';

export interface SafetyServiceOptions {
  /** Interface to bind. @default '127.0.0.1' */
  readonly host: string;
  /** TCP port; 0 picks a free one (logged). @default 8090 */
  readonly port: number;
  readonly logLevel: (typeof SHARED_OPTION_TABLE)['logLevel']['default'];
}

export const SAFETY_SERVICE_OPTIONS: OptionTable<SafetyServiceOptions> = {
  host: {
    env: 'ATELIER_SAFETY_SERVICE_HOST',
    doc: 'Interface the safety service binds',
    default: '127.0.0.1',
    parse: parse.string,
  },
  port: {
    env: 'ATELIER_SAFETY_SERVICE_PORT',
    doc: 'TCP port of the safety service (0 = any free port)',
    default: 8090,
    parse: parse.int(0, 65535),
  },
  logLevel: SHARED_OPTION_TABLE.logLevel,
};

/** A screen request is a prompt; a prompt is never near this size, so a larger body is refused unread. */
const MAX_BODY_BYTES = 64 * 1024;

const SCREEN_REQUEST = z.object({
  prompt: z.string().min(1).max(PROMPT_MAX_CHARS),
});

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

function reply(res: ServerResponse, status: number, body: unknown): void {
  // After a 413 the rest of the body is never read: the connection cannot carry another request.
  const close = status === 413 ? { connection: 'close' } : {};
  res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', ...close });
  res.end(JSON.stringify(body));
}

const tooLarge = (): HttpError => new HttpError(413, 'BODY_TOO_LARGE', `The body is above ${MAX_BODY_BYTES} bytes`);

/**
 * The request body as text, refusing anything above MAX_BODY_BYTES without buffering it. A body that grows past it
 * is left unread (not destroyed), so the 413 still reaches the client before the connection closes.
 */
function readBody(req: IncomingMessage): Promise<string> {
  if (Number(req.headers['content-length'] ?? 0) > MAX_BODY_BYTES) return Promise.reject(tooLarge());
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) return void chunks.push(chunk);
      req.off('data', onData);
      req.pause();
      reject(tooLarge());
    };
    req.on('data', onData);
    req.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.once('error', reject);
  });
}

async function screenRequest(screen: PromptScreen, req: IncomingMessage): Promise<unknown> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]?.trim().toLowerCase();
  if (type !== 'application/json')
    throw new HttpError(415, 'UNSUPPORTED_MEDIA_TYPE', 'The body must be application/json');
  const text = await readBody(req);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpError(400, 'BAD_JSON', 'The body is not valid JSON');
  }
  const parsed = SCREEN_REQUEST.safeParse(body);
  if (!parsed.success) {
    const details = Object.fromEntries(parsed.error.issues.map((i) => [i.path.join('.') || '(body)', i.message]));
    throw new HttpError(400, 'INVALID_REQUEST', `Expected {"prompt": string of 1 to ${PROMPT_MAX_CHARS}}`, details);
  }
  const result = await screen.screen(parsed.data.prompt);
  return { allowed: result.allowed, categories: result.categories, screen: screen.name };
}

/** The service's HTTP server around `screen`, not listening yet. */
export function createSafetyServer(screen: PromptScreen, log: Pick<Logger, 'warn'>): Server {
  return createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const route = path === '/v1/screen' ? 'POST' : path === '/healthz' ? 'GET' : undefined;
    if (!route) return reply(res, 404, { error: 'NOT_FOUND', message: `No route ${path}` });
    if (req.method !== route)
      return reply(res, 405, { error: 'METHOD_NOT_ALLOWED', message: `${path} takes ${route}` });
    if (route === 'GET') return reply(res, 200, { ok: true, screen: screen.name });
    screenRequest(screen, req).then(
      (verdict) => reply(res, 200, verdict),
      (err: unknown) => {
        if (err instanceof HttpError) {
          const { status, code, message, details } = err;
          return reply(
            res,
            status,
            details === undefined ? { error: code, message } : { error: code, message, details },
          );
        }
        log.warn({ err }, 'screening a prompt failed');
        reply(res, 500, { error: 'INTERNAL', message: 'The screen failed' });
      },
    );
  });
}

async function main(): Promise<void> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    const title = 'safety-service: the rules-v1 prompt screen over HTTP (POST /v1/screen).';
    process.stdout.write(formatOptionHelp(title, SAFETY_SERVICE_OPTIONS));
    return;
  }
  const options = resolveOptions(SAFETY_SERVICE_OPTIONS);
  const log = createLogger('safety-service', {}, options.logLevel);
  const server = createSafetyServer(new RulesPromptScreen(), log);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  log.info({ url: `http://${options.host}:${port}` }, 'safety service listening');
  // Nothing to drain: a screen takes microseconds, and a caller whose answer is cut off retries.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      log.info({ signal }, 'safety service shutting down');
      void closeServer(server).then(() => process.exit(0));
    });
  }
}

if (require.main === module) {
  main().catch((err: unknown) => {
    // A TypeError is a configuration mistake: its message names the variable, a stack trace would only hide it.
    const detail =
      err instanceof TypeError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
    process.stderr.write(`safety-service failed to start: ${detail}\n`);
    process.exit(1);
  });
}
