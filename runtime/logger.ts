// Structured JSON logs (pino) for every process. Entry points pass the level they resolved from LOG_LEVEL (see
// runtime/shared-options.ts); code without options (tests, libraries) reads LOG_LEVEL directly (default `info`).
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
  });
}
