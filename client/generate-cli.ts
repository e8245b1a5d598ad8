// `npm run generate -- "a lighthouse at dusk" --tier fast --out out.png`: submits one request through the
// gateway, shows its progress on stderr, downloads the images and saves them. Exit status: 0 images saved,
// 1 the request was rejected or failed (or a download failed), 2 bad usage, 3 gateway unreachable or key refused.
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { isModelName, MODELS } from '../core/models';
import { isTier } from '../core/tiers';
import {
  AtelierClient,
  AuthenticationError,
  ConnectionLostError,
  GatewayConnectError,
  ProtocolError,
  RequestRejectedError,
  type CompletedFrame,
  type GenerateInput,
} from './client';
import { progressPrinter, type ProgressPrinter } from './progress';

export const EXIT = { OK: 0, FAILED: 1, USAGE: 2, UNREACHABLE: 3 } as const;

const USAGE = `Usage: npm run generate -- "<prompt>" [options]

Options:
  --model <name>        ${Object.keys(MODELS).join(' | ')} (default: sdxl)
  --tier <tier>         turbo | fast | relax (default: fast)
  --width <px>          multiple of 8 (default: the model's)
  --height <px>         multiple of 8 (default: the model's)
  --steps <n>           denoising steps (default: the model's)
  --seed <n>            0..4294967295 (default: random)
  --num-images <n>      1..8 (default: 1)
  --negative <text>     negative prompt
  --guidance <x>        guidance scale 0..30
  --request-id <id>     idempotency key; re-running with the same id re-attaches (default: random)
  --deadline-ms <ms>    give up (TIMED_OUT) unless done this long after acceptance, 1000..86400000 (default: none)
  --out <file.png>      output path; several images are saved as out.png, out-1.png, ... (default: out.png)
  --url <ws-url>        gateway (default: $ATELIER_URL or ws://127.0.0.1:8080/v1/ws)
  --key <api-key>       API key (default: $ATELIER_API_KEY or dev-key)
  --quiet               no progress output
  -h, --help            this text
`;

/** Thrown for command-line mistakes; main() prints it with the usage text and exits with 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

export interface GenerateCommand {
  readonly request: GenerateInput;
  readonly out: string;
  readonly url: string;
  readonly apiKey: string;
  readonly quiet: boolean;
}

function integer(name: string, raw: string | undefined): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n)) throw new UsageError(`--${name} must be an integer, got ${JSON.stringify(raw)}`);
  return n;
}

/** Parses the command line into a request; validation of ranges is left to the gateway, which says precisely. */
export function parseGenerateArgs(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): GenerateCommand | 'help' {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        model: { type: 'string', default: 'sdxl' },
        tier: { type: 'string', default: 'fast' },
        width: { type: 'string' },
        height: { type: 'string' },
        steps: { type: 'string' },
        seed: { type: 'string' },
        'num-images': { type: 'string' },
        negative: { type: 'string' },
        guidance: { type: 'string' },
        'request-id': { type: 'string' },
        'deadline-ms': { type: 'string' },
        out: { type: 'string', default: 'out.png' },
        url: { type: 'string', default: env.ATELIER_URL || 'ws://127.0.0.1:8080/v1/ws' },
        key: { type: 'string', default: env.ATELIER_API_KEY || 'dev-key' },
        quiet: { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) return 'help';
  const prompt = positionals.join(' ').trim();
  if (prompt === '') throw new UsageError('A prompt is required');
  if (!isModelName(values.model))
    throw new UsageError(`Unknown model ${JSON.stringify(values.model)}; known: ${Object.keys(MODELS).join(', ')}`);
  if (!isTier(values.tier))
    throw new UsageError(`Unknown tier ${JSON.stringify(values.tier)}; expected turbo, fast or relax`);
  const spec = MODELS[values.model];
  const guidance = values.guidance === undefined ? undefined : Number(values.guidance);
  if (guidance !== undefined && !Number.isFinite(guidance)) throw new UsageError('--guidance must be a number');
  const optional = {
    steps: integer('steps', values.steps),
    seed: integer('seed', values.seed),
    numImages: integer('num-images', values['num-images']),
    negativePrompt: values.negative,
    guidanceScale: guidance,
    requestId: values['request-id'],
    deadlineMs: integer('deadline-ms', values['deadline-ms']),
  };
  const request: GenerateInput = {
    prompt,
    model: values.model,
    tier: values.tier,
    width: integer('width', values.width) ?? spec.defaultWidth,
    height: integer('height', values.height) ?? spec.defaultHeight,
    ...Object.fromEntries(Object.entries(optional).filter(([, v]) => v !== undefined)),
  };
  return { request, out: values.out, url: values.url, apiKey: values.key, quiet: values.quiet };
}

/** `out.png` for the first image, then `out-1.png`, `out-2.png`, ... */
export function outputPath(out: string, index: number): string {
  if (index === 0) return out;
  const ext = path.extname(out);
  return `${out.slice(0, out.length - ext.length)}-${index}${ext}`;
}

async function download(url: string, file: string): Promise<number> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`GET ${url} answered HTTP ${res.status}`);
  const body = Buffer.from(await res.arrayBuffer());
  await writeFile(file, body);
  return body.length;
}

/** The connected client, or the exit status when the gateway cannot be reached or refuses the key. */
async function connectOrExit(cmd: GenerateCommand, stderr: NodeJS.WriteStream): Promise<AtelierClient | number> {
  try {
    return await AtelierClient.connect({ url: cmd.url, apiKey: cmd.apiKey });
  } catch (err) {
    stderr.write(`error: ${(err as Error).message}\n`);
    return err instanceof AuthenticationError || err instanceof GatewayConnectError ? EXIT.UNREACHABLE : EXIT.FAILED;
  }
}

/**
 * The first Ctrl-C asks the gateway to cancel and keeps waiting for the outcome; a second one quits at once.
 * Returns the function that removes the handler.
 */
function cancelOnSigint(
  client: AtelierClient,
  requestId: string,
  stderr: NodeJS.WriteStream,
  progress: ProgressPrinter,
): () => void {
  let interrupts = 0;
  const onSigint = (): void => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    progress.endLine();
    stderr.write('cancelling (Ctrl-C again to quit without waiting)\n');
    client.cancel(requestId);
  };
  process.on('SIGINT', onSigint);
  return () => process.off('SIGINT', onSigint);
}

/** Downloads every image to its output path; a failed download is reported and fails the run, but not the rest. */
async function saveImages(terminal: CompletedFrame, out: string, stderr: NodeJS.WriteStream): Promise<number> {
  let status: number = EXIT.OK;
  for (const [i, image] of terminal.images.entries()) {
    const file = outputPath(out, i);
    try {
      const bytes = await download(image.url, file);
      stderr.write(`saved ${file} (${image.width}x${image.height}, seed ${image.seed}, ${bytes} bytes)\n`);
    } catch (err) {
      stderr.write(`error: could not download ${image.url}: ${(err as Error).message}\n`);
      status = EXIT.FAILED;
    }
  }
  return status;
}

/** Reports an error thrown while the request ran and returns its exit status; rethrows errors it does not know. */
function exitStatusFor(err: unknown, requestId: string, stderr: NodeJS.WriteStream): number {
  if (err instanceof RequestRejectedError) {
    const details = err.details
      ? ` (${Object.entries(err.details)
          .map(([k, v]) => `${k}: ${v}`)
          .join('; ')})`
      : '';
    const retry = err.retryAfterMs !== undefined ? ` Retry in ${Math.ceil(err.retryAfterMs / 1000)} s.` : '';
    stderr.write(`error: the gateway rejected the request: ${err.message}${details}.${retry}\n`);
    return EXIT.FAILED;
  }
  if (err instanceof ConnectionLostError) {
    stderr.write(`error: ${err.message}. Re-run with --request-id ${requestId} to re-attach.\n`);
    return EXIT.UNREACHABLE;
  }
  if (err instanceof ProtocolError) {
    stderr.write(`error: ${err.message}\n`);
    return EXIT.FAILED;
  }
  throw err;
}

export async function runGenerate(cmd: GenerateCommand, stderr: NodeJS.WriteStream = process.stderr): Promise<number> {
  const progress = progressPrinter(stderr, cmd.quiet);
  const client = await connectOrExit(cmd, stderr);
  if (typeof client === 'number') return client;

  const requestId = cmd.request.requestId ?? randomUUID();
  const removeSigintHandler = cancelOnSigint(client, requestId, stderr, progress);
  try {
    const terminal = await client.generate({ ...cmd.request, requestId }, (frame) => progress.show(frame));
    progress.endLine();
    if (terminal.type === 'failed') {
      const retryable = terminal.retryable ? ' (retryable)' : '';
      stderr.write(`error: the request failed: ${terminal.code}: ${terminal.message}${retryable}\n`);
      return EXIT.FAILED;
    }
    return await saveImages(terminal, cmd.out, stderr);
  } catch (err) {
    progress.endLine();
    return exitStatusFor(err, requestId, stderr);
  } finally {
    removeSigintHandler();
    await client.close();
  }
}

async function main(): Promise<void> {
  let cmd: GenerateCommand | 'help';
  try {
    cmd = parseGenerateArgs(process.argv.slice(2));
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    process.stderr.write(`error: ${err.message}\n\n${USAGE}`);
    process.exit(EXIT.USAGE);
  }
  if (cmd === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  process.exitCode = await runGenerate(cmd);
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(EXIT.FAILED);
  });
}
