// What `npm run stack:cluster -- --check` proves on the cluster engines (issue 14): a request goes through the
// gateway, the Temporal server on PostgreSQL and the GPU worker to a stored PNG; operators find it by Atelier's
// search attributes in SQL visibility (a row in PostgreSQL); and the state Redis keeps for it (session, rate limits,
// event log) is spread over more than one master of the Redis Cluster.
import { Client, Connection } from '@temporalio/client';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { AtelierClient, type RequestEventFrame } from '../client/client';
import type { ClusterStack } from './stack-cluster';

export interface ClusterCheck {
  readonly name: string;
  readonly pass: boolean;
  readonly detail: string;
}

export interface ClusterCheckResult {
  readonly lines: string[];
  readonly json: { bench: 'stack-cluster'; pass: boolean; request_ms: number; checks: ClusterCheck[] };
}

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

async function runOneRequest(c: ClusterStack): Promise<{ checks: ClusterCheck[]; ms: number; workflowId?: string }> {
  const client = await AtelierClient.connect({ url: c.stack.gatewayWsUrl, apiKey: c.stack.apiKey });
  const events: string[] = [];
  let workflowId: string | undefined;
  const startedAt = Date.now();
  try {
    const terminal = await client.generate(
      {
        requestId: randomUUID(),
        model: 'sdxl',
        prompt: 'a lighthouse at dusk',
        tier: 'fast',
        width: 512,
        height: 512,
        steps: 4,
      },
      (frame: RequestEventFrame) => {
        events.push(frame.type);
        if (frame.type === 'accepted') workflowId = frame.workflowId;
      },
    );
    const ms = Date.now() - startedAt;
    const checks: ClusterCheck[] = [
      {
        name: 'request_completed',
        pass: terminal.type === 'completed',
        detail: `${events.join(' > ')} in ${ms} ms`,
      },
    ];
    if (terminal.type === 'completed') {
      const image = terminal.images[0];
      const res = image ? await fetch(image.url) : undefined;
      const body = res ? Buffer.from(await res.arrayBuffer()) : Buffer.alloc(0);
      checks.push({
        name: 'image_stored',
        pass: res?.status === 200 && body.subarray(0, 8).equals(PNG_SIGNATURE),
        detail: `GET ${image?.url ?? '(no image)'}: ${res?.status ?? '-'}, ${body.length} bytes`,
      });
    }
    return { checks, ms, ...(workflowId !== undefined ? { workflowId } : {}) };
  } finally {
    await client.close();
  }
}

async function visibilityCheck(c: ClusterStack, workflowId: string | undefined): Promise<ClusterCheck[]> {
  if (workflowId === undefined) return [{ name: 'sql_visibility', pass: false, detail: 'no workflow id' }];
  const connection = await Connection.connect({ address: c.temporal.address });
  try {
    const client = new Client({ connection, namespace: c.temporal.namespace });
    const query = `WorkflowId = '${workflowId}' AND GenerationStatus = 'Completed' AND Tier = 'fast' AND Model = 'sdxl'`;
    let found = 0;
    // Visibility is written asynchronously to the workflow's close: give it a few seconds.
    for (let i = 0; i < 50 && found === 0; i++) {
      found = (await client.workflow.count(query)).count;
      if (found === 0) await new Promise((r) => setTimeout(r, 200));
    }
    const rows = await c.temporal.postgres.query(
      `SELECT count(*) FROM executions_visibility WHERE workflow_id = '${workflowId}'`,
      'temporal_visibility',
    );
    return [
      { name: 'sql_visibility', pass: found === 1, detail: `${query}: ${found} workflow(s)` },
      { name: 'postgres_row', pass: rows.trim() === '1', detail: `executions_visibility rows: ${rows.trim()}` },
    ];
  } finally {
    await connection.close();
  }
}

async function redisSpreadCheck(c: ClusterStack): Promise<ClusterCheck> {
  const sizes = await Promise.all(
    c.redis.nodes.map(async (node) => {
      const redis = new Redis(node.url, { maxRetriesPerRequest: 1, lazyConnect: true });
      try {
        await redis.connect();
        return await redis.dbsize();
      } finally {
        redis.disconnect();
      }
    }),
  );
  const used = sizes.filter((n) => n > 0).length;
  return { name: 'redis_cluster_spread', pass: used >= 2, detail: `keys per master: ${sizes.join(', ')}` };
}

/** Runs the request and every check; never throws for a failed check (it says which failed). */
export async function checkClusterStack(c: ClusterStack): Promise<ClusterCheckResult> {
  const request = await runOneRequest(c);
  const checks = [...request.checks, ...(await visibilityCheck(c, request.workflowId)), await redisSpreadCheck(c)];
  const pass = checks.every((x) => x.pass);
  const lines = [
    '',
    `stack:cluster check: Temporal server ${c.temporal.address} on PostgreSQL, Redis Cluster of ${c.redis.nodes.length} masters`,
    ...checks.map((x) => `  ${x.pass ? 'PASS' : 'FAIL'} ${x.name.padEnd(22)} ${x.detail}`),
  ];
  return { lines, json: { bench: 'stack-cluster', pass, request_ms: request.ms, checks } };
}
