// `npm run stack:cluster` end to end (issue 14): the gateway, control worker and GPU workers of `npm start` on a
// Temporal server built from go.temporal.io/server on PostgreSQL (SQL visibility, Atelier's search attributes) and a
// three-master Redis Cluster. One request goes through the gateway to a stored PNG, is found by search attribute in
// PostgreSQL's visibility, and its state in Redis lands on more than one master (infra/stack-cluster-check.ts, the
// same checks as `npm run stack:cluster -- --check`).
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { promises as fs } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createLogger } from '../../runtime/logger';
import { resolveOptions } from '../../runtime/options';
import { launchClusterStack, type ClusterStack } from '../../infra/stack-cluster';
import { checkClusterStack } from '../../infra/stack-cluster-check';
import { STACK_OPTIONS } from '../../infra/stack-options';

describe('stack:cluster', () => {
  let dataDir: string;
  let cluster: ClusterStack | undefined;
  const output: string[] = [];

  before(async () => {
    dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'atelier-stack-cluster-'));
    const options = {
      ...resolveOptions(STACK_OPTIONS, {}),
      dataDir,
      prometheusPort: 0,
      gatewayPort: 0,
      logLevel: 'warn' as const,
      readyTimeoutMs: 120_000,
      shutdownTimeoutMs: 10_000,
    };
    cluster = await launchClusterStack(options, {
      log: createLogger('test.stack-cluster', {}, 'warn'),
      extraEnv: {},
      onOutput: (name, line) => void output.push(`${name} | ${line}`),
    });
  });

  after(async () => {
    await cluster?.stop();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  test('a request runs end to end on Temporal-on-PostgreSQL and Redis Cluster', async () => {
    assert.ok(cluster);
    const result = await checkClusterStack(cluster);
    const names = result.json.checks.map((c) => c.name);
    assert.deepEqual(names, [
      'request_completed',
      'image_stored',
      'sql_visibility',
      'postgres_row',
      'redis_cluster_spread',
    ]);
    for (const check of result.json.checks) {
      assert.ok(check.pass, `${check.name}: ${check.detail}\n${output.slice(-30).join('\n')}`);
    }
    assert.equal(result.json.pass, true);
  });
});
