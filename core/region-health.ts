// Region health (issue 12): whether a region can take new requests, from live signals (runtime/region-beats.ts, the
// GPU worker registry). Pure. A region is healthy while a control worker polls its queues (nothing is orchestrated
// without one) and at least one of its GPU workers is ready (nothing is generated without one); each signal lapses
// after seed 001's 30 s heartbeat timeout, so a dead region is seen within 30 s, inside the 60 s the issue asks and
// the seed's 5 minutes. A region without a live gateway still runs what other regions route to it: its gateways
// matter to clients (the load balancer's health check), not to failover.

export interface RegionSignals {
  /** Control workers heard from within the heartbeat timeout. */
  readonly controlWorkers: number;
  /** Gateways heard from within the heartbeat timeout. */
  readonly gateways: number;
  /** GPU workers in the registry, by fleet, and how many of them are ready (serving, probes passing). */
  readonly gpuWorkers: Readonly<Record<string, { readonly live: number; readonly ready: number }>>;
}

export interface RegionHealth extends RegionSignals {
  readonly region: string;
  readonly healthy: boolean;
  /** What is missing, for operators; empty when nothing is. */
  readonly problems: readonly string[];
}

export function regionHealth(region: string, signals: RegionSignals): RegionHealth {
  const ready = Object.values(signals.gpuWorkers).reduce((sum, fleet) => sum + fleet.ready, 0);
  const problems: string[] = [];
  if (signals.controlWorkers === 0) problems.push('no control worker heard from in 30 s');
  if (ready === 0) problems.push('no ready GPU worker');
  const healthy = problems.length === 0;
  if (signals.gateways === 0) problems.push('no gateway heard from in 30 s');
  for (const [fleet, { live, ready: r }] of Object.entries(signals.gpuWorkers))
    if (live > 0 && r === 0) problems.push(`fleet ${fleet}: no ready worker of ${live}`);
  return { region, ...signals, healthy, problems };
}
