// One trace per request, through the stack's real processes: an OTLP/HTTP receiver runs inside this test, the
// stack exports to it (the standard OTEL_* variables), and one request's spans from the gateway, the workflow, the
// safety screen, inference (with its pipeline stages) and storage must share one trace id with the right parents.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startStack, type StackHandle } from '../../infra/test-stack';
import { within } from '../helpers/deadline';
import { eventually } from '../helpers/eventually';
import { connectTestSocket, type TestSocket } from '../helpers/ws-client';

interface ReceivedSpan {
  readonly service: string;
  readonly name: string;
  readonly traceId: string;
  readonly spanId: string;
  readonly parentSpanId: string;
}

interface OtlpJson {
  resourceSpans?: {
    resource?: { attributes?: { key: string; value: { stringValue?: string } }[] };
    scopeSpans?: { spans?: { traceId: string; spanId: string; parentSpanId?: string; name: string }[] }[];
  }[];
}

/** An OTLP/HTTP (JSON) trace receiver: what a collector, Jaeger or Tempo would get. */
async function startReceiver(): Promise<{ url: string; spans: ReceivedSpan[]; server: Server }> {
  const spans: ReceivedSpan[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (req.url === '/v1/traces') {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as OtlpJson;
        for (const rs of body.resourceSpans ?? []) {
          const service = rs.resource?.attributes?.find((a) => a.key === 'service.name')?.value.stringValue ?? '?';
          for (const ss of rs.scopeSpans ?? []) {
            for (const s of ss.spans ?? []) {
              spans.push({
                service,
                name: s.name,
                traceId: s.traceId,
                spanId: s.spanId,
                parentSpanId: s.parentSpanId ?? '',
              });
            }
          }
        }
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, spans, server };
}

describe('tracing', () => {
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let stack: StackHandle;
  let socket: TestSocket;

  before(async () => {
    receiver = await startReceiver();
    stack = await startStack({
      gatewayPort: 0,
      gpuTypes: ['a10g'],
      env: {
        ATELIER_SIM_SPEEDUP: '50',
        OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
        OTEL_EXPORTER_OTLP_PROTOCOL: 'http/json',
        OTEL_BSP_SCHEDULE_DELAY: '200',
      },
    });
    socket = await connectTestSocket(stack.gatewayWsUrl, stack.apiKey);
  });

  after(async () => {
    await within('the test socket', 10_000, socket?.close() ?? Promise.resolve());
    await within('the local stack', 60_000, stack?.stop() ?? Promise.resolve());
    await new Promise<void>((resolve) => receiver?.server.close(() => resolve()));
  });

  test('one request is one trace: gateway, workflow, safety, inference and its stages, storage', async () => {
    const requestId = `traced-${Date.now()}`;
    socket.send({
      type: 'generate',
      requestId,
      prompt: 'a quiet harbour',
      model: 'sdxl',
      tier: 'fast',
      width: 256,
      height: 256,
      steps: 3,
    });
    const done = await socket.terminal(requestId, 120_000);
    assert.equal(done.type, 'completed', JSON.stringify(done));

    const wanted = [
      'atelier.generate',
      'StartWorkflow:generateImage',
      'RunWorkflow:generateImage',
      'RunActivity:checkPromptSafety',
      'StartActivity:runInference',
      'RunActivity:runInference',
      'inference.denoise',
      'inference.png',
      'StartActivity:storeImages',
      'RunActivity:storeImages',
    ];
    let trace: ReceivedSpan[] = [];
    await eventually(
      () => {
        const root = receiver.spans.find((s) => s.name === 'atelier.generate');
        trace = root ? receiver.spans.filter((s) => s.traceId === root.traceId) : [];
        return wanted.every((name) => trace.some((s) => s.name === name));
      },
      30_000,
      'every span of the request',
    ).catch(() =>
      assert.fail(`spans of the trace: ${trace.map((s) => `${s.service}/${s.name}`).join(', ') || '(none)'}`),
    );

    const span = (name: string): ReceivedSpan => trace.find((s) => s.name === name) as ReceivedSpan;
    const parentOf = (name: string): string => {
      const parent = trace.find((s) => s.spanId === span(name).parentSpanId);
      return parent ? parent.name : `(none: ${span(name).parentSpanId})`;
    };
    assert.equal(span('atelier.generate').service, 'atelier-gateway');
    assert.equal(parentOf('StartWorkflow:generateImage'), 'atelier.generate');
    assert.equal(parentOf('RunWorkflow:generateImage'), 'StartWorkflow:generateImage');
    assert.equal(span('RunWorkflow:generateImage').service, 'atelier-control-worker');
    assert.equal(parentOf('StartActivity:runInference'), 'RunWorkflow:generateImage');
    assert.equal(parentOf('RunActivity:runInference'), 'StartActivity:runInference');
    assert.equal(span('RunActivity:runInference').service, 'atelier-gpu-worker-a10g');
    assert.equal(parentOf('inference.denoise'), 'RunActivity:runInference');
    assert.equal(parentOf('inference.png'), 'RunActivity:runInference');
    assert.equal(parentOf('RunActivity:storeImages'), 'StartActivity:storeImages');
    assert.equal(parentOf('StartActivity:storeImages'), 'RunWorkflow:generateImage');
    assert.match(
      parentOf('RunActivity:checkPromptSafety'),
      /^(StartActivity:checkPromptSafety|RunWorkflow:generateImage)$/,
    );
  });
});
