// The tracer Atelier's own spans come from (gateway requests, inference stages). Only the OpenTelemetry API: it is a
// no-op until the process starts tracing (runtime/tracing.ts), so any module may use it at no cost.
import { trace, type Tracer } from '@opentelemetry/api';

export const TRACER_NAME = 'atelier';

export function atelierTracer(): Tracer {
  return trace.getTracer(TRACER_NAME);
}
