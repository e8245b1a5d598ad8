// What a worker needs for one trace per request: the OpenTelemetry activity interceptors (each activity runs in a
// span whose parent is the workflow's, read from the activity's headers) and the sink through which the workflow
// sandbox exports its spans. The workflow side is bundled with the workflow code (workers/workflow-bundle.ts), so
// every worker registers the sink, with a processor that drops spans when tracing is off.
import {
  makeWorkflowExporter,
  OpenTelemetryActivityInboundInterceptor,
  OpenTelemetryActivityOutboundInterceptor,
} from '@temporalio/interceptors-opentelemetry';
import type { WorkerOptions } from '@temporalio/worker';
import { Resource } from '@opentelemetry/resources';
import { NoopSpanProcessor } from '@opentelemetry/sdk-trace-base';
import type { Tracing } from '../runtime/tracing';

/** Tracing as a process that did not configure it has it. */
const TRACING_OFF: Pick<Tracing, 'spanProcessor' | 'resource'> = {
  spanProcessor: new NoopSpanProcessor(),
  resource: Resource.empty(),
};

export function tracingWorkerOptions(
  tracing: Pick<Tracing, 'spanProcessor' | 'resource'> = TRACING_OFF,
): Pick<WorkerOptions, 'interceptors' | 'sinks'> {
  return {
    interceptors: {
      activity: [
        (ctx) => ({
          inbound: new OpenTelemetryActivityInboundInterceptor(ctx),
          outbound: new OpenTelemetryActivityOutboundInterceptor(ctx),
        }),
      ],
    },
    sinks: { exporter: makeWorkflowExporter(tracing.spanProcessor, tracing.resource) },
  };
}
