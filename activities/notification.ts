// Publishes a request's events (status, completed, failed) to its event log in Redis, where gateways follow it.
// The log is the one of the workflow this activity runs for: its id is the workflow id (`gen:<user>:<requestId>`),
// which is also what the gateway follows, so the two can never disagree about which log a request has.
import { Context } from '@temporalio/activity';
import type { NotificationActivities, PublishEventInput } from '../core/activities';
import type { RequestEventPublisher } from '../runtime/event-log';
import { activityFailure } from './failures';

export interface NotificationDeps {
  readonly eventLog: RequestEventPublisher;
}

/** The event log id of the workflow the current activity belongs to. */
export function currentEventLogId(): string {
  const execution = Context.current().info.workflowExecution;
  if (!execution) {
    // Standalone activity executions have no workflow and so no request log; nothing could ever read the event.
    throw activityFailure('InvalidRequest', 'Request events can only be published for a workflow');
  }
  return execution.workflowId;
}

export function createNotificationActivities({ eventLog }: NotificationDeps): NotificationActivities {
  return {
    async publishEvent(input: PublishEventInput): Promise<number> {
      return eventLog.publish(currentEventLogId(), input.event, input.dedupeKey);
    },
  };
}
