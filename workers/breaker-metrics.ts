// The deployment's shared circuit breakers on the control worker's /metrics, read from Redis at each scrape (one
// process per region exports them, not every gateway): `atelier_circuit_breaker_state{breaker="model", name}` for
// every model and `{breaker="global"}` (0 closed, 1 half-open, 2 open), and the global failure ratio over its 60 s
// window. The alerts AtelierModelCircuitOpen and AtelierGlobalFailureRateHigh read them. GPU workers export their own
// breaker (`breaker="worker"`) themselves.
import type { Registry } from 'prom-client';
import { MODEL_NAMES } from '../core/models';
import type { Logger } from '../runtime/logger';
import { atelierGauge } from '../runtime/metrics';
import type { GlobalFailureRate } from '../runtime/global-breaker';
import type { ModelBreakers } from '../runtime/model-breakers';
import { BREAKER_STATE_VALUE } from '../core/circuit-breaker';

export interface SharedBreakers {
  readonly modelBreakers: Pick<ModelBreakers, 'state'>;
  readonly globalRate: Pick<GlobalFailureRate, 'read'>;
  readonly log: Logger;
}

/** Every shared breaker's state now, for the control worker's /readyz (shown, never gating). */
export async function readSharedBreakers(deps: SharedBreakers): Promise<Record<string, unknown>> {
  try {
    const models: Record<string, string> = {};
    for (const model of MODEL_NAMES) models[model] = await deps.modelBreakers.state(model);
    const global = await deps.globalRate.read();
    return { models, global: { state: global.open ? 'OPEN' : 'CLOSED', ...global } };
  } catch (err) {
    return { error: err instanceof Error ? err.message : String(err) };
  }
}

export function registerBreakerMetrics(registry: Registry, deps: SharedBreakers): void {
  atelierGauge<'breaker' | 'name'>(registry, {
    name: 'atelier_circuit_breaker_state',
    help: "Circuit breaker state: 0 closed, 1 half-open, 2 open (seed 001's per-model and global breakers)",
    labelNames: ['breaker', 'name'],
    async collect() {
      this.reset();
      try {
        for (const model of MODEL_NAMES) {
          const state = await deps.modelBreakers.state(model);
          this.set({ breaker: 'model', name: model }, BREAKER_STATE_VALUE[state]);
        }
        const global = await deps.globalRate.read();
        this.set({ breaker: 'global', name: 'requests' }, global.open ? BREAKER_STATE_VALUE.OPEN : 0);
      } catch (err) {
        // No sample rather than a made-up one; the scrape still serves everything else.
        deps.log.warn({ err }, 'could not read the circuit breakers for /metrics');
      }
    },
  });
  atelierGauge(registry, {
    name: 'atelier_global_failure_ratio',
    help: 'Share of requests that ended failed (service failures only) over the last 60 s; the global breaker opens above 0.1 with at least 20 requests',
    async collect() {
      this.reset();
      const reading = await deps.globalRate.read().catch(() => undefined);
      if (reading && reading.total > 0) this.set(reading.failed / reading.total);
    },
  });
}
