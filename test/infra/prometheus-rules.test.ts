// The alerting rules and the Prometheus configuration, checked by Prometheus's own tool: the rule file parses, its
// promtool unit tests (a firing and a silent case for every alert) pass, and the prometheus.yml the launcher writes
// is a valid configuration that loads those rules and no test file.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { defaultRulesDir, writePrometheusConfig, writeTargetsFile } from '../../infra/prometheus';
import { resolvePrometheus } from '../../infra/provision';

const RULES_DIR = defaultRulesDir();
const RULE_FILE = path.join(RULES_DIR, 'atelier-alerts.yml');
const RULE_TESTS = path.join(RULES_DIR, 'atelier-alerts.test.yml');

let promtool: string;
let scratch: string;

before(async () => {
  promtool = process.env.PROMTOOL_PATH || (await resolvePrometheus({ install: false })).promtool;
  scratch = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-prometheus-rules-'));
});

after(async () => {
  await fs.rm(scratch, { recursive: true, force: true });
});

/** Runs promtool; fails the test with everything it printed when it exits non-zero. */
function runPromtool(binary: string, args: string[], cwd?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(binary, args, { cwd, timeout: 60_000 }, (err, stdout, stderr) => {
      const output = `${stdout}${stderr}`;
      if (err) reject(new assert.AssertionError({ message: `promtool ${args.join(' ')} failed:\n${output}` }));
      else resolve(output);
    });
  });
}

describe('alerting rules', () => {
  test('promtool check rules accepts the rule file', async () => {
    const output = await runPromtool(promtool, ['check', 'rules', RULE_FILE]);
    assert.match(output, /SUCCESS: \d+ rules found/);
  });

  test('promtool test rules: every alert fires when it should and only then', async () => {
    // Run from the rules folder: the test file names its rule file relative to itself.
    const output = await runPromtool(promtool, ['test', 'rules', path.basename(RULE_TESTS)], RULES_DIR);
    assert.match(output, /SUCCESS/);
  });

  test('every alert has a severity, a summary, a description and at least one test case', async () => {
    const rules = await fs.readFile(RULE_FILE, 'utf8');
    const tests = await fs.readFile(RULE_TESTS, 'utf8');
    const alerts = [...rules.matchAll(/^\s+- alert: (\w+)$/gm)].map((m) => m[1] ?? '');
    assert.ok(alerts.length >= 10, `expected the seeds' alerts, found ${alerts.join(', ')}`);
    const blocks = rules.split(/^\s+- alert: /m).slice(1);
    for (const [i, block] of blocks.entries()) {
      for (const field of ['severity:', 'summary:', 'description:', 'for:']) {
        assert.ok(block.includes(field), `${alerts[i]} has no ${field}`);
      }
    }
    for (const alert of alerts) {
      const cases = tests.match(new RegExp(`alertname: ${alert}$`, 'gm')) ?? [];
      assert.ok(cases.length >= 2, `${alert}: ${cases.length} test case(s); a firing and a silent one are needed`);
    }
  });
});

describe('prometheus.yml', () => {
  test('the launcher writes a configuration promtool accepts, loading the rules but not their tests', async () => {
    const targetsFile = path.join(scratch, 'targets.json');
    await writeTargetsFile(targetsFile, [
      { target: '127.0.0.1:8080', labels: { process: 'gateway' } },
      { target: '127.0.0.1:9101', labels: { process: 'gpu-worker[a10g]', gpu_type: 'a10g' } },
    ]);
    const configFile = await writePrometheusConfig(path.join(scratch, 'data'), {
      targetsFile,
      scrapeIntervalSeconds: 5,
    });
    const output = await runPromtool(promtool, ['check', 'config', configFile]);
    assert.match(output, /SUCCESS/);
    assert.match(output, /SUCCESS: \d+ rules found/, 'check config also checks each rule file');

    const config = await fs.readFile(configFile, 'utf8');
    assert.ok(config.includes(JSON.stringify(RULE_FILE)), config);
    assert.ok(!config.includes('.test.yml'), 'a promtool test file is not a rule file');
    assert.match(config, /file_sd_configs/);
    assert.match(config, /scrape_interval: 5s/);
  });
});
