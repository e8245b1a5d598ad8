#!/usr/bin/env node
// Entry point of `npm start`, `npm test`, `npm run test:unit`, `npm run generate` and `npm run provision` on a fresh clone: installs
// node_modules when missing or stale, compiles when sources changed since the last build, then runs the compiled
// command, forwarding arguments, signals and the exit code. Plain CommonJS with no dependencies, because it runs
// before node_modules exists.
'use strict';

const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const DIST = path.join(ROOT, 'dist');
/** Written after a successful build; sources newer than it trigger a rebuild. */
const BUILD_STAMP = path.join(DIST, '.build-stamp');
/** Folders whose TypeScript ends up in dist/ and is run by the commands below. */
const SOURCE_DIRS = [
  'core',
  'workflows',
  'activities',
  'inference',
  'gateway',
  'client',
  'workers',
  'infra',
  'runtime',
];
/** Files outside those folders that change the build output. */
const BUILD_INPUTS = ['tsconfig.json', 'package-lock.json'];

const COMMANDS = {
  start: 'dist/infra/start.js',
  test: 'dist/infra/run-tests.js',
  generate: 'dist/client/generate-cli.js',
  admin: 'dist/client/admin-cli.js',
  provision: 'dist/infra/provision.js',
  'stack:cluster': 'dist/infra/stack-cluster.js',
};

/**
 * Commands that run from source under tsx. The unit tier needs no build (it must stay well under a minute, and a
 * tsc build alone can take half of that on a small machine); the load benchmark starts the compiled stack.
 */
const SOURCE_COMMANDS = {
  'test:unit': { source: 'infra/run-tests.ts', args: ['--unit'], build: false },
  'test:cluster': { source: 'infra/run-tests.ts', args: ['--cluster'], build: true },
  'bench:load': { source: 'bench/load.ts', args: [], build: true },
  chaos: { source: 'infra/chaos.ts', args: [], build: true },
};

const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm';

function say(message) {
  process.stderr.write(`[atelier] ${message}\n`);
}

function mtimeMs(file) {
  try {
    return fs.statSync(file).mtimeMs;
  } catch {
    return undefined;
  }
}

/** Runs a command to completion with inherited stdio; exits this process with its status on failure. */
function runOrExit(command, args, what, env = process.env) {
  const result = spawnSync(command, args, { cwd: ROOT, env, stdio: 'inherit', shell: process.platform === 'win32' });
  if (result.error) {
    say(`${what} could not run: ${result.error.message}`);
    process.exit(1);
  }
  if (result.status !== 0) {
    say(`${what} failed (${result.signal || `exit code ${result.status}`})`);
    process.exit(result.status || 1);
  }
}

/**
 * .npmrc's `onnxruntime-node-install=skip` keeps onnxruntime-node's install script from downloading CUDA binaries.
 * npm warns that it will stop passing unknown project keys to install scripts, so the same default also goes in the
 * environment variable the script reads first, unless the caller chose a value (README "Running inference on CUDA").
 */
function installEnv() {
  const chosen = process.env.ONNXRUNTIME_NODE_INSTALL || process.env.npm_config_onnxruntime_node_install;
  return chosen ? process.env : { ...process.env, ONNXRUNTIME_NODE_INSTALL: 'skip' };
}

function installDependencies() {
  const lockfile = path.join(ROOT, 'package-lock.json');
  const installedLock = path.join(ROOT, 'node_modules', '.package-lock.json');
  const hasLockfile = fs.existsSync(lockfile);
  const lockTime = mtimeMs(lockfile);
  const installedTime = mtimeMs(installedLock);
  const stale =
    !fs.existsSync(path.join(ROOT, 'node_modules')) ||
    installedTime === undefined ||
    (lockTime !== undefined && lockTime > installedTime);
  if (!stale) return;
  if (hasLockfile) {
    say('installing dependencies (npm ci)');
    runOrExit(NPM, ['ci', '--no-audit', '--no-fund'], 'npm ci', installEnv());
  } else {
    say('installing dependencies (npm install; there is no package-lock.json)');
    runOrExit(NPM, ['install', '--no-audit', '--no-fund'], 'npm install', installEnv());
  }
}

/** Newest modification time of any .ts file under `dir` (0 when none). */
function newestTsMtime(dir) {
  let newest = 0;
  let entries;
  try {
    entries = fs.readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules' && !entry.name.startsWith('.')) newest = Math.max(newest, newestTsMtime(full));
    } else if (entry.name.endsWith('.ts')) {
      newest = Math.max(newest, mtimeMs(full) || 0);
    }
  }
  return newest;
}

function buildIfStale() {
  const stamp = mtimeMs(BUILD_STAMP);
  if (stamp !== undefined && fs.existsSync(DIST)) {
    const newestSource = Math.max(
      ...SOURCE_DIRS.map((dir) => newestTsMtime(path.join(ROOT, dir))),
      ...BUILD_INPUTS.map((file) => mtimeMs(path.join(ROOT, file)) || 0),
    );
    if (newestSource <= stamp) return;
  }
  say('compiling TypeScript (tsc)');
  // The stamp's time is taken before compiling, so a source saved during the build triggers the next one.
  const startedAt = new Date();
  runOrExit(
    process.execPath,
    [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'],
    'tsc',
  );
  const bundler = path.join(DIST, 'workers', 'workflow-bundle.js');
  if (fs.existsSync(bundler)) {
    say('bundling workflow code');
    runOrExit(process.execPath, [bundler], 'workflow bundling');
  } else {
    say(
      'warning: dist/workers/workflow-bundle.js does not exist; skipping the workflow bundle (workers will bundle at start-up)',
    );
  }
  fs.mkdirSync(DIST, { recursive: true });
  fs.writeFileSync(BUILD_STAMP, `${startedAt.toISOString()}\n`);
  fs.utimesSync(BUILD_STAMP, startedAt, startedAt);
}

/** Runs `node <nodeArgs>` for `command`, forwarding signals and exiting the way it exits. */
function dispatch(command, nodeArgs) {
  const script = nodeArgs.find((a) => a.endsWith('.js') || a.endsWith('.ts'));
  if (script && !fs.existsSync(script)) {
    say(`${path.relative(ROOT, script)} does not exist after the build; is its source file written yet?`);
    process.exit(1);
  }
  // `generate` runs where the user called npm (INIT_CWD), so `--out picture.png` lands there; the servers and the
  // test runner work from the repository root.
  const cwd = command === 'generate' ? process.env.INIT_CWD || process.cwd() : ROOT;
  const child = spawn(process.execPath, nodeArgs, { cwd, stdio: 'inherit' });
  // A terminal Ctrl-C reaches the child directly too (same process group); forwarding covers `kill <pid>` from a
  // supervisor. The child treats a repeated signal within a moment as one.
  const forward = (signal) => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  };
  const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'];
  for (const signal of signals) process.on(signal, forward);
  child.on('error', (err) => {
    say(`could not run ${command}: ${err.message}`);
    process.exit(1);
  });
  child.on('exit', (code, signal) => {
    for (const s of signals) process.off(s, forward);
    if (signal) {
      // Die the same way, so callers (npm, CI, shells) see the real cause.
      process.kill(process.pid, signal);
      return;
    }
    process.exit(code === null ? 1 : code);
  });
}

function main() {
  const [command, ...args] = process.argv.slice(2);
  const known = [...Object.keys(COMMANDS), ...Object.keys(SOURCE_COMMANDS)];
  if (!command || !known.includes(command)) {
    say(`usage: node infra/bootstrap.cjs <${known.join('|')}> [args...]`);
    process.exit(2);
  }
  installDependencies();
  if (Object.prototype.hasOwnProperty.call(SOURCE_COMMANDS, command)) {
    const { source, args: fixed, build } = SOURCE_COMMANDS[command];
    if (build) buildIfStale();
    dispatch(command, ['--import', 'tsx', path.join(ROOT, source), ...fixed, ...args]);
    return;
  }
  buildIfStale();
  dispatch(command, [path.join(ROOT, COMMANDS[command]), ...args]);
}

main();
