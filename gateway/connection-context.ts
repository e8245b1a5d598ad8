// What a client connection (connection.ts) needs from the gateway that owns it: its user and plan, the services a
// request goes through, and where its frames and metrics go.
import type { Plan } from '../core/plans';
import type { EventSubscriber, RedisEventLog } from '../runtime/event-log';
import type { Logger } from '../runtime/logger';
import type { Admission } from './admission';
import type { RequestExpectations } from './expectations';
import type { GatewayMetrics } from './metrics';
import type { GenerationOrchestrator } from './orchestrator';
import type { RateDecision } from './rate-limit';

/** What a connection needs from the gateway that owns it. */
export interface ConnectionContext {
  readonly connectionId: string;
  readonly userId: string;
  readonly region: string;
  /** The URL of a stored image in `completed` frames (capability or signed: image-urls.ts). */
  readonly imageUrl: (key: string) => string;
  readonly maxBufferedBytes: number;
  readonly orchestrator: GenerationOrchestrator;
  readonly eventLog: RedisEventLog;
  readonly subscriber: EventSubscriber;
  /** The user's API-key plan: tiers, rate, in-flight cap. */
  readonly plan: Plan;
  /** Every check between a valid frame and the workflow start (admission.ts). */
  readonly admission: Pick<Admission, 'admit'>;
  /** Cancels have their own budget, and one for a request the user never had costs no Temporal call. */
  readonly cancels: CancelChecks;
  readonly log: Logger;
  /** Registers work that shutdown must let finish (a workflow start and its `accepted` event). */
  readonly trackInFlight: (work: Promise<unknown>) => void;
  /** Aborted when shutdown gives up waiting; stops start retries. */
  readonly shutdownSignal: AbortSignal;
  readonly metrics: GatewayMetrics;
  /** The estimate in `accepted`, the request's place in its queue, and queue updates while it waits. */
  readonly expectations: Pick<RequestExpectations, 'estimate' | 'enter' | 'follow'>;
}

export interface CancelChecks {
  /** Takes one cancel from the user's cancel budget. */
  consume(userId: string): Promise<RateDecision>;
  /** Whether the user has, or had, this request (its log or live entry exists); true when that cannot be read. */
  knows(userId: string, workflowId: string): Promise<boolean>;
}
