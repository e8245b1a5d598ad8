// Structured JSON logs (pino) for every process. Entry points pass the level they resolved from LOG_LEVEL (see
// runtime/shared-options.ts); code without options (tests, libraries) reads LOG_LEVEL directly (default `info`). Inside a
// traced request every line carries the trace and span ids, so logs and traces join.
import { isSpanContextValid, trace } from '@opentelemetry/api';
import pino, { type Logger } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function createLogger(component: string, bindings: Record<string, unknown> = {}, level?: LogLevel): Logger {
  return pino({
    name: component,
    level: level ?? process.env.LOG_LEVEL ?? 'info',
    base: { pid: process.pid, ...bindings },
    timestamp: pino.stdTimeFunctions.isoTime,
    mixin: traceFields,
  });
}

/** The active span's ids on every log line written inside a traced request (the same keys Temporal's SDK uses). */
function traceFields(): Record<string, string> {
  const context = trace.getActiveSpan()?.spanContext();
  return context && isSpanContextValid(context) ? { trace_id: context.traceId, span_id: context.spanId } : {};
}
