// OpenTelemetry tracing for every process: one trace per request, from the gateway's `generate` frame through the
// workflow start, the workflow, each activity and the inference pipeline's stages, to storage. It is off unless
// configured by the standard variables: an OTLP endpoint (`OTEL_EXPORTER_OTLP_ENDPOINT` or
// `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) or `OTEL_TRACES_EXPORTER=otlp|console`; `OTEL_EXPORTER_OTLP_PROTOCOL` picks
// `http/protobuf` (default) or `http/json`, and `OTEL_SERVICE_NAME` / `OTEL_RESOURCE_ATTRIBUTES` name the process
// as usual. Point it at Jaeger, Tempo or any OTLP collector.
//
// The Temporal workflow code runs in a sandbox and hands its spans to the worker through a sink; that sink gets the
// same span processor as the rest of the process, so workflow spans leave by the same exporter.
import { OTLPTraceExporter as OtlpHttpJsonExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { OTLPTraceExporter as OtlpHttpProtoExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { Resource } from '@opentelemetry/resources';
import { NodeSDK } from '@opentelemetry/sdk-node';
import {
  BatchSpanProcessor,
  ConsoleSpanExporter,
  NoopSpanProcessor,
  SimpleSpanProcessor,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';

export interface Tracing {
  /** Whether spans are exported at all. */
  readonly enabled: boolean;
  /** For the Temporal workflow span sink; a no-op processor when tracing is off. */
  readonly spanProcessor: SpanProcessor;
  readonly resource: Resource;
  /** Flushes and stops the exporter; spans still buffered are sent first. */
  shutdown(): Promise<void>;
}

/** Which exporter the environment asks for, or undefined when tracing is off. */
export function configuredTraceExporter(env: NodeJS.ProcessEnv = process.env): 'otlp' | 'console' | undefined {
  const listed = (env.OTEL_TRACES_EXPORTER ?? '')
    .split(',')
    .map((s) => s.trim().toLowerCase())
    .filter((s) => s.length > 0);
  if (listed.includes('none')) return undefined;
  if (listed.includes('console')) return 'console';
  if (listed.includes('otlp')) return 'otlp';
  return env.OTEL_EXPORTER_OTLP_ENDPOINT || env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT ? 'otlp' : undefined;
}

function exporterFor(kind: 'otlp' | 'console', env: NodeJS.ProcessEnv): SpanExporter {
  if (kind === 'console') return new ConsoleSpanExporter();
  const protocol = env.OTEL_EXPORTER_OTLP_TRACES_PROTOCOL ?? env.OTEL_EXPORTER_OTLP_PROTOCOL ?? 'http/protobuf';
  if (protocol === 'http/json') return new OtlpHttpJsonExporter();
  if (protocol !== 'http/protobuf') {
    throw new TypeError(`OTEL_EXPORTER_OTLP_PROTOCOL=${JSON.stringify(protocol)}: expected http/protobuf or http/json`);
  }
  return new OtlpHttpProtoExporter();
}

let started: Tracing | undefined;

/**
 * Starts tracing for this process, once; later calls return the same handle. `serviceName` names the process
 * unless OTEL_SERVICE_NAME does.
 */
export function startTracing(serviceName: string, env: NodeJS.ProcessEnv = process.env): Tracing {
  if (started) return started;
  const resource = new Resource({ 'service.name': env.OTEL_SERVICE_NAME || serviceName });
  const kind = configuredTraceExporter(env);
  if (!kind) {
    started = { enabled: false, spanProcessor: new NoopSpanProcessor(), resource, shutdown: () => Promise.resolve() };
    return started;
  }
  const exporter = exporterFor(kind, env);
  const spanProcessor = kind === 'console' ? new SimpleSpanProcessor(exporter) : new BatchSpanProcessor(exporter);
  const sdk = new NodeSDK({ serviceName: env.OTEL_SERVICE_NAME || serviceName, spanProcessors: [spanProcessor] });
  sdk.start();
  started = { enabled: true, spanProcessor, resource, shutdown: () => sdk.shutdown() };
  return started;
}
