// The Grafana dashboard (infra/grafana/atelier-dashboard.json): every panel query is valid PromQL, checked by
// Prometheus's own parser (each one becomes a recording rule that `promtool check rules` reads), and the dashboard
// has the rows operators look for and a datasource input, so it imports as is.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolvePrometheus } from '../../infra/provision';
import { repoRoot } from '../../infra/repo-root';

const DASHBOARD = path.join(repoRoot(), 'infra', 'grafana', 'atelier-dashboard.json');
const DATASOURCE_UID = '${DS_PROMETHEUS}';

interface Target {
  expr?: string;
  refId?: string;
  datasource?: { type?: string; uid?: string };
}
interface Panel {
  id?: number;
  type?: string;
  title?: string;
  datasource?: { type?: string; uid?: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  __inputs?: { name?: string; type?: string; pluginId?: string }[];
  panels?: Panel[];
  uid?: string;
  title?: string;
}

let dashboard: Dashboard;
let promtool: string;
let scratch: string;

before(async () => {
  dashboard = JSON.parse(await fs.readFile(DASHBOARD, 'utf8')) as Dashboard;
  promtool = process.env.PROMTOOL_PATH || (await resolvePrometheus({ install: false })).promtool;
  scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-grafana-test-'));
});

after(async () => {
  await fs.rm(scratch, { recursive: true, force: true });
});

/** Every panel, those inside collapsed rows included. */
function allPanels(panels: readonly Panel[] = dashboard.panels ?? []): Panel[] {
  return panels.flatMap((p) => [p, ...allPanels(p.panels ?? [])]);
}

/** Grafana's interval variables become a fixed window, the only thing Prometheus cannot parse in a panel query. */
function substituteGrafanaVariables(expr: string): string {
  return expr.replace(/\$\{?__(rate_interval|interval|range)(?::\w+)?\}?/g, '5m');
}

function runPromtool(binary: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(binary, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`;
      if (err) reject(new assert.AssertionError({ message: `promtool ${args.join(' ')} failed:\n${output}` }));
      else resolve(output);
    });
  });
}

describe('Grafana dashboard', () => {
  test('every panel query parses as PromQL (promtool check rules)', async () => {
    const exprs = allPanels().flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''));
    assert.ok(exprs.length >= 10, `only ${exprs.length} queries`);
    assert.ok(
      exprs.every((e) => e.trim() !== ''),
      'a target without an expression',
    );
    const rules = exprs.map((expr, n) => ({ record: `dashboard_check_${n}`, expr: substituteGrafanaVariables(expr) }));
    // JSON is YAML: no YAML library needed to write the rule file.
    const file = path.join(scratch, 'dashboard-exprs.yml');
    await fs.writeFile(file, JSON.stringify({ groups: [{ name: 'dashboard_check', rules }] }, null, 2));
    const output = await runPromtool(promtool, ['check', 'rules', file]);
    assert.match(output, new RegExp(`SUCCESS: ${rules.length} rules found`), output);
  });

  test('has the rows operators look for, each with panels under it', () => {
    const panels = dashboard.panels ?? [];
    const rows = panels.filter((p) => p.type === 'row').map((p) => p.title);
    for (const row of ['Connections', 'Latency by tier', 'GPU fleets', 'Backlog', 'Rejections', 'Temporal']) {
      assert.ok(rows.includes(row), `no row ${JSON.stringify(row)} (rows: ${rows.join(', ')})`);
      const at = panels.findIndex((p) => p.type === 'row' && p.title === row);
      const next = panels[at + 1];
      assert.ok(next !== undefined && next.type !== 'row', `row ${row} is empty`);
    }
  });

  test('charts the metrics of the seeds', () => {
    const exprs = allPanels()
      .flatMap((p) => (p.targets ?? []).map((t) => t.expr ?? ''))
      .join('\n');
    for (const metric of [
      'atelier_ws_connections',
      'atelier_request_e2e_seconds_bucket',
      'atelier_request_queue_wait_seconds_bucket',
      'atelier_gpu_duty_cycle',
      'atelier_gpu_memory_used_bytes / atelier_gpu_memory_total_bytes',
      'atelier_queue_backlog',
      'atelier_queue_backlog_age_seconds',
      'rate(atelier_rejections_total',
      'temporal_activity_schedule_to_start_latency',
    ]) {
      assert.ok(exprs.includes(metric), `no panel queries ${metric}`);
    }
  });

  test('imports as is: a Prometheus datasource input that every panel and query uses', () => {
    const input = dashboard.__inputs?.find((i) => i.name === 'DS_PROMETHEUS');
    assert.deepEqual(input && { type: input.type, pluginId: input.pluginId }, {
      type: 'datasource',
      pluginId: 'prometheus',
    });
    assert.ok(dashboard.uid && dashboard.title, 'a uid and a title');
    const charts = allPanels().filter((p) => p.type !== 'row');
    const ids = new Set(allPanels().map((p) => p.id));
    assert.equal(ids.size, allPanels().length, 'panel ids are unique');
    for (const panel of charts) {
      assert.equal(panel.datasource?.uid, DATASOURCE_UID, `panel ${panel.title}`);
      for (const target of panel.targets ?? []) {
        assert.equal(target.datasource?.uid ?? DATASOURCE_UID, DATASOURCE_UID, `panel ${panel.title} ${target.refId}`);
      }
    }
  });
});
