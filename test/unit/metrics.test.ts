// The per-process Prometheus registry (runtime/metrics.ts): the event-loop lag gauge follows a blocked loop and
// settles once it runs freely, /metrics answers in the Prometheus text format with the process and region labels,
// Node's default metrics and any appended text, and metric names that break the naming rules are refused. Also the
// gateway's request clock (gateway/metrics.ts), fed with the events a client would see.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Registry } from 'prom-client';
import type { RequestEvent, SequencedEvent } from '../../core/events';
import { GatewayMetrics } from '../../gateway/metrics';
import {
  atelierCounter,
  atelierGauge,
  atelierHistogram,
  createProcessRegistry,
  metricsEndpoint,
  serveMetrics,
} from '../../runtime/metrics';

/** The value of the one sample of `name` whose labels include `labels`, or undefined. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!match || match[1] !== name) continue;
    const has = Object.entries(labels).every(([k, v]) => (match[2] ?? '').includes(`${k}="${v}"`));
    if (has) return Number(match[3]);
  }
  return undefined;
}

function blockEventLoop(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) {
    // Busy on purpose: this is the stall the gauge must see.
  }
}

describe('the process registry', () => {
  test('atelier_event_loop_lag_seconds reports the p99 delay since the last scrape', async () => {
    const registry = createProcessRegistry({ process: 'gateway', region: 'test-region' });
    await sleep(50);
    await registry.metrics(); // starts a fresh window
    await sleep(30);
    blockEventLoop(150);
    await sleep(30);
    const blocked = sample(await registry.metrics(), 'atelier_event_loop_lag_seconds');
    assert.ok(blocked !== undefined && blocked >= 0.1, `a 150 ms stall shows: ${blocked}`);
    await sleep(100);
    const idle = sample(await registry.metrics(), 'atelier_event_loop_lag_seconds');
    assert.ok(idle !== undefined && idle < 0.05, `the next window no longer has the stall: ${idle}`);
  });

  test('/metrics answers in the Prometheus text format with the labels of the process and the appended text', async () => {
    const registry = createProcessRegistry({ process: 'control-worker', region: 'test-region' });
    const endpoint = metricsEndpoint(registry, [() => Promise.resolve('temporal_demo_total{task_queue="q"} 3')]);
    const server: Server = createServer((req, res) => void serveMetrics(endpoint, req.method, res));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
    try {
      const res = await fetch(url);
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
      assert.equal(res.headers.get('cache-control'), 'no-store');
      const text = await res.text();
      assert.match(text, /^# TYPE atelier_event_loop_lag_seconds gauge$/m);
      assert.match(text, /^atelier_event_loop_lag_seconds\{process="control-worker",region="test-region"\} \S+$/m);
      assert.ok(sample(text, 'process_cpu_user_seconds_total') !== undefined, "Node's default metrics are there");
      assert.ok(text.endsWith('temporal_demo_total{task_queue="q"} 3\n'), 'the appended text comes last, whole');
      const head = await fetch(url, { method: 'HEAD' });
      assert.equal(head.status, 200);
      assert.equal(await head.text(), '');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('names must start with atelier_ and counters end with _total', () => {
    const registry: Registry = createProcessRegistry({ process: 'gpu-worker', region: 'test-region' });
    assert.throws(() => atelierCounter(registry, { name: 'atelier_rejections', help: 'x' }), /_total/);
    assert.throws(() => atelierGauge(registry, { name: 'ws_connections', help: 'x' }), /atelier_/);
    assert.throws(() => atelierHistogram(registry, { name: 'atelier_latency', help: 'x', buckets: [1] }), /seconds/);
    assert.doesNotThrow(() => atelierHistogram(registry, { name: 'atelier_demo_seconds', help: 'x', buckets: [1] }));
  });
});

describe('the gateway request clock', () => {
  const at = (seq: number, event: RequestEvent): SequencedEvent => ({ ...event, seq });

  test('queue wait runs from accepted to generating; end to end from the frame to the terminal, by outcome', async () => {
    const metrics = GatewayMetrics.forProcess('test-region');
    const timer = metrics.requestTimer({ tier: 'fast', model: 'sdxl' }, 1_000);
    timer.delivered(at(1, { type: 'accepted', workflowId: 'gen:u:r' }), 1_100);
    timer.delivered(at(2, { type: 'status', status: 'queued' }), 1_100);
    timer.delivered(at(3, { type: 'status', status: 'generating', gpuType: 'a10g' }), 3_600);
    timer.delivered(at(4, { type: 'completed', images: [] }), 5_000);
    timer.delivered(at(5, { type: 'failed', code: 'INTERNAL', message: 'x', retryable: false }), 9_000);
    const cancelled = metrics.requestTimer({ tier: 'relax', model: 'flux' }, 0);
    cancelled.delivered(at(1, { type: 'failed', code: 'CANCELLED', message: 'x', retryable: false }), 250);
    metrics.refused('RATE_LIMITED');
    metrics.refused('BAD_JSON');

    const text = await metrics.endpoint.render();
    const wait = { tier: 'fast', gpu_type: 'a10g' };
    assert.equal(sample(text, 'atelier_request_queue_wait_seconds_sum', wait), 2.5);
    assert.equal(sample(text, 'atelier_request_queue_wait_seconds_count', wait), 1);
    const done = { tier: 'fast', model: 'sdxl', outcome: 'completed' };
    assert.equal(sample(text, 'atelier_request_e2e_seconds_sum', done), 4, 'one terminal per request, the first');
    assert.equal(sample(text, 'atelier_request_e2e_seconds_count', { outcome: 'failed' }), undefined);
    const gone = { tier: 'relax', model: 'flux', outcome: 'cancelled' };
    assert.equal(sample(text, 'atelier_request_e2e_seconds_sum', gone), 0.25);
    assert.equal(sample(text, 'atelier_rejections_total', { code: 'RATE_LIMITED' }), 1);
    assert.equal(sample(text, 'atelier_rejections_total', { code: 'BAD_JSON' }), 1);
    assert.equal(sample(text, 'atelier_rejections_total', { code: 'UNKNOWN_MODEL' }), 0, 'every code starts at 0');
    assert.equal(sample(text, 'atelier_ws_connections', { process: 'gateway', region: 'test-region' }), 0);
  });
});
