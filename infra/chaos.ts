// `npm run chaos`: runs every chaos experiment (test/chaos/*.test.ts) on the real local stack, through the test
// runner (which provisions Temporal and Redis as `npm test` does), collects each experiment's figures, and prints them
// as a table against seed 001's targets, then one JSON line. Exits non-zero when an experiment failed, lost a
// request or answered one twice. An experiment that reported no figures is listed as missing and fails the run.
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ExperimentLine } from './chaos-report';
import { repoRoot } from './repo-root';

/** Each experiment's recovery figure, what it measures, and seed 001's target for it where the seed has one. */
const TARGETS: Readonly<Record<string, { measures: string; target: string }>> = {
  worker_termination: { measures: 'kill → the killed request completed', target: '< 30 s detection, no request fails' },
  redis_restart: { measures: 'crash → every request answered', target: 'no request lost' },
  temporal_restart: { measures: 'stop → every request answered', target: 'no request lost' },
  storage_latency: { measures: 'burst sent → last image delivered', target: 'images still delivered' },
  gateway_kill: { measures: 'kill → every client answered', target: 'clients re-attach, nothing lost' },
  queue_pressure: { measures: 'spike sent → last request answered', target: 'priority holds, no cascading failures' },
  safety_outage: { measures: 'safety back → every request answered', target: 'pending_safety, retried, none lost' },
  network_partition: { measures: 'cut → every request answered', target: 'routed around it, recovers when healed' },
  region_outage: {
    measures: 'kill → every request of the region answered elsewhere',
    target: 'region: < 5 min detection, < 10 min failover, "possible queue loss"',
  },
  model_load_failure: {
    measures: 'first failure → every request answered',
    target: 'breaker triggers, requests eventually succeed',
  },
};

function runChaosTests(root: string, report: string): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'infra', 'run-tests.ts'), 'test/chaos'], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, ATELIER_CHAOS_REPORT: report },
    });
    child.on('exit', (code) => resolve(code ?? 1));
  });
}

function table(lines: readonly ExperimentLine[]): string {
  const header =
    '| experiment | accepted | completed once | failed (code) | lost | duplicates | recovery | seed target |';
  const rows = lines.map((l) => {
    const t = TARGETS[l.experiment];
    const phases = Object.entries(l.phasesMs ?? {}).map(([name, ms]) => `; ${name} ${(ms / 1000).toFixed(1)} s`);
    const recovery = `${(l.recoveryMs / 1000).toFixed(1)} s${t ? ` (${t.measures})` : ''}${phases.join('')}`;
    return `| ${l.experiment} | ${l.accepted} | ${l.completedOnce} | ${l.failedWithCode} | ${l.lost} | ${l.duplicates} | ${recovery} | ${t?.target ?? ''} |`;
  });
  return [header, '|---|---|---|---|---|---|---|---|', ...rows].join('\n');
}

async function main(): Promise<number> {
  const root = repoRoot();
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-chaos-'));
  const report = path.join(dir, 'experiments.jsonl');
  try {
    const testsExit = await runChaosTests(root, report);
    const text = await fs.readFile(report, 'utf8').catch(() => '');
    const lines = text
      .split('\n')
      .filter((l) => l.trim() !== '')
      .map((l) => JSON.parse(l) as ExperimentLine);
    // Every experiment of seed 001 and issues 10 and 12 must have reported: one that did not run is a failure, not a pass.
    const missing = Object.keys(TARGETS).filter((name) => !lines.some((l) => l.experiment === name));
    process.stdout.write(`\n${table(lines)}\n\n${missing.length > 0 ? `missing: ${missing.join(', ')}` : ''}\n`);
    const lost = lines.reduce((n, l) => n + l.lost, 0);
    const duplicates = lines.reduce((n, l) => n + l.duplicates, 0);
    const ok = testsExit === 0 && lost === 0 && duplicates === 0 && missing.length === 0;
    process.stdout.write(`${JSON.stringify({ bench: 'chaos', ok, lost, duplicates, experiments: lines, missing })}\n`);
    return ok ? 0 : 1;
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`npm run chaos failed: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
