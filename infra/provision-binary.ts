// The search-then-install order every pinned, Go-built tool of the project follows (the Temporal CLI, toxiproxy-server):
// an explicit path from the environment (which must work: it is never silently replaced), the command on PATH, the
// per-user cache, then an install into the cache under a lock, with `go install` when Go is there, else the release
// binary. Each tool supplies its own check, build, download and instructions (provision-temporal.ts,
// provision-toxiproxy.ts).
import path from 'node:path';
import { defaultLog, errorMessage, findOnPath, ProvisionError, type ProvisionOptions } from './provision-common';
import { withInstallLock } from './provision-lock';

export interface PinnedBinary {
  /** Shown in messages, e.g. `Temporal CLI`. */
  readonly label: string;
  /** The variable naming an explicit binary, e.g. `TEMPORAL_CLI_PATH`. */
  readonly envVar: string;
  /** Its name on PATH, e.g. `temporal`. */
  readonly command: string;
  readonly version: string;
  readonly cachedPath: (env: NodeJS.ProcessEnv) => string;
  /** Why `binary` is not usable, or undefined; `cached` is set for the cache's own copy (it may have to be the pin). */
  readonly check: (binary: string, cached: boolean) => Promise<string | undefined>;
  readonly goInstall: (
    go: string,
    target: string,
    env: NodeJS.ProcessEnv,
    log: (line: string) => void,
  ) => Promise<void>;
  readonly download: (target: string, log: (line: string) => void) => Promise<void>;
  readonly instructions: (cached: string) => string;
}

/** Path of a working binary, found or installed in the order above; ProvisionError with instructions otherwise. */
export async function resolvePinnedBinary(spec: PinnedBinary, opts: ProvisionOptions = {}): Promise<string> {
  const env = opts.env ?? process.env;
  const log = opts.log ?? defaultLog;

  const explicit = env[spec.envVar];
  if (explicit !== undefined && explicit !== '') {
    const problem = await spec.check(explicit, false);
    if (problem) {
      throw new ProvisionError(
        `${spec.envVar}=${explicit} is not a working ${spec.label}: ${problem}. ` +
          `Point it at a ${spec.label} ${spec.version} binary, or unset it to let Atelier find or install one.`,
      );
    }
    return explicit;
  }

  const onPath = await findOnPath(spec.command, env);
  if (onPath) {
    const problem = await spec.check(onPath, false);
    if (!problem) return onPath;
    log(`ignoring ${onPath} from PATH: ${problem}`);
  }

  const cached = spec.cachedPath(env);
  if (!(await spec.check(cached, true))) return cached;

  if (opts.install === false) throw new ProvisionError(spec.instructions(cached));

  return withInstallLock(path.join(path.dirname(cached), `.${spec.command}-install.lock`), log, () =>
    install(spec, cached, env, log),
  );
}

/** Installs into `cached` with `go install`, else from the release; call it holding the install lock. */
async function install(
  spec: PinnedBinary,
  cached: string,
  env: NodeJS.ProcessEnv,
  log: (line: string) => void,
): Promise<string> {
  // Another process may have installed it while we waited for the lock.
  if (!(await spec.check(cached, true))) return cached;
  const attempts: string[] = [];
  const go = await findOnPath('go', env);
  if (go) {
    try {
      await spec.goInstall(go, cached, env, log);
      const problem = await spec.check(cached, true);
      if (!problem) return cached;
      attempts.push(`go install produced a binary that does not run: ${problem}`);
    } catch (err) {
      attempts.push(`go install failed: ${errorMessage(err)}`);
      log(`go install failed: ${errorMessage(err)}`);
    }
  } else {
    attempts.push('Go is not installed');
  }
  try {
    await spec.download(cached, log);
    const problem = await spec.check(cached, true);
    if (!problem) return cached;
    attempts.push(`the downloaded binary does not run: ${problem}`);
  } catch (err) {
    attempts.push(`download failed: ${errorMessage(err)}`);
  }
  throw new ProvisionError(`${spec.instructions(cached)}\nTried: ${attempts.join('; ')}.`);
}
