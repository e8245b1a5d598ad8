// The gateway's Prometheus metrics: open WebSocket connections, each request's end-to-end latency and queue wait as
// its client sees them (measured from the frames this gateway receives and the events it delivers), and every frame
// it refuses, by code. Served on the gateway's HTTP port at /metrics, with Node's and the event loop's metrics.
import type { Counter, Histogram, Registry } from 'prom-client';
import { FRAME_ERROR_CODES, REJECT_CODES, type FrameErrorCode, type RejectCode } from '../core/errors';
import type { SequencedEvent } from '../core/events';
import type { ModelName } from '../core/models';
import type { Tier } from '../core/tiers';
import {
  atelierCounter,
  atelierGauge,
  atelierHistogram,
  createProcessRegistry,
  metricsEndpoint,
  type MetricsEndpoint,
} from '../runtime/metrics';

/** 0.1 s (a one-step turbo request) to 10 min (a 4096x4096 flux batch waiting behind others on a relax queue). */
const E2E_BUCKETS = [0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600];
/** From an idle fleet (tens of ms) to the seed's relax-tier waits of minutes. */
const QUEUE_WAIT_BUCKETS = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];

export type RequestOutcome = 'completed' | 'failed' | 'cancelled';

export class GatewayMetrics {
  readonly endpoint: MetricsEndpoint;
  private readonly e2e: Histogram<'tier' | 'model' | 'outcome'>;
  private readonly queueWait: Histogram<'tier' | 'gpu_type'>;
  private readonly rejections: Counter<'code'>;
  private readonly peerReads: Counter<'origin'>;
  private openConnections: () => number = () => 0;

  constructor(readonly registry: Registry) {
    this.endpoint = metricsEndpoint(registry);
    const connections = (): number => this.openConnections();
    atelierGauge(registry, {
      name: 'atelier_ws_connections',
      help: 'Open WebSocket connections of this gateway',
      collect() {
        this.set(connections());
      },
    });
    this.e2e = atelierHistogram(registry, {
      name: 'atelier_request_e2e_seconds',
      help: 'From a generate frame to the terminal event delivered for it, requests submitted here only, seconds',
      labelNames: ['tier', 'model', 'outcome'],
      buckets: E2E_BUCKETS,
    });
    this.queueWait = atelierHistogram(registry, {
      name: 'atelier_request_queue_wait_seconds',
      help: 'From the accepted event to the generating status (a GPU worker took the request), as delivered, seconds',
      labelNames: ['tier', 'gpu_type'],
      buckets: QUEUE_WAIT_BUCKETS,
    });
    this.rejections = atelierCounter(registry, {
      name: 'atelier_rejections_total',
      help: 'Frames refused: rejected frames (request refused) and error frames (frame unreadable), by code',
      labelNames: ['code'],
    });
    this.peerReads = atelierCounter(registry, {
      name: 'atelier_image_peer_reads_total',
      help: "Images served from another region's store (their origin), not yet replicated to this one's, by origin",
      labelNames: ['origin'],
    });
    // Every code starts at 0, so rate() sees the first rejection of a kind instead of a series appearing.
    for (const code of [...Object.keys(REJECT_CODES), ...Object.keys(FRAME_ERROR_CODES)])
      this.rejections.inc({ code }, 0);
  }

  /** The registry of a gateway process: `process="gateway"` and the region on every sample. */
  static forProcess(region: string): GatewayMetrics {
    return new GatewayMetrics(createProcessRegistry({ process: 'gateway', region }));
  }

  /** Where the open-connection count comes from (the connection registry, created after the metrics). */
  countConnectionsWith(count: () => number): void {
    this.openConnections = count;
  }

  /** A `rejected` or `error` frame went out. */
  refused(code: RejectCode | FrameErrorCode): void {
    this.rejections.inc({ code });
  }

  /** An image was served from `region`'s store: it was not (yet) replicated to this gateway's region. */
  imageReadFromPeer(region: string): void {
    this.peerReads.inc({ origin: region });
  }

  /** Times a request submitted on a connection from the moment its generate frame arrived (performance.now()). */
  requestTimer(labels: { tier: Tier; model: ModelName }, receivedAt: number): RequestTimer {
    return new RequestTimer(this.e2e, this.queueWait, labels, receivedAt);
  }
}

/**
 * One request's clock, fed with the events delivered for it. Only requests whose `accepted` this gateway recorded
 * get one: a re-attach replays events that happened long before, which would make both figures meaningless.
 */
export class RequestTimer {
  private acceptedAt: number | undefined;
  private waited = false;
  private ended = false;

  constructor(
    private readonly e2e: Histogram<'tier' | 'model' | 'outcome'>,
    private readonly queueWait: Histogram<'tier' | 'gpu_type'>,
    private readonly labels: { tier: Tier; model: ModelName },
    private readonly receivedAt: number,
  ) {}

  delivered(event: SequencedEvent, now = performance.now()): void {
    if (this.ended) return;
    if (event.type === 'accepted') this.acceptedAt ??= now;
    if (event.type === 'status' && event.status === 'generating' && !this.waited && this.acceptedAt !== undefined) {
      this.waited = true;
      const gpuType = event.gpuType ?? 'unknown';
      this.queueWait.observe({ tier: this.labels.tier, gpu_type: gpuType }, (now - this.acceptedAt) / 1000);
    }
    if (event.type === 'completed' || event.type === 'failed') {
      this.ended = true;
      const outcome: RequestOutcome =
        event.type === 'completed' ? 'completed' : event.code === 'CANCELLED' ? 'cancelled' : 'failed';
      this.e2e.observe({ ...this.labels, outcome }, (now - this.receivedAt) / 1000);
    }
  }
}
