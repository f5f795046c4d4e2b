/**
 * AWS Lambda entry point for a signed-event consumer (template.yaml's EventsConsumerFunction, fed
 * by EventsQueue): verify, re-check against the table as it is now, run once, report transient
 * failures through `batchItemFailures`. The handler below is the worked example of docs/events.md:
 * replace it with the work the event stands for. Behaviour lives in src/aws/sqs-consumer.ts.
 */
import policy from '../demo/policy.json' with { type: 'json' };
import { createSqsEventHandler } from '../src/aws/sqs-consumer.ts';

export const handler = createSqsEventHandler({
  policy,
  env: process.env,
  // Longer than the function's 6 s timeout (template.yaml Globals), so only a killed run's lease
  // ends, and far shorter than EventsQueue's 5 receives x 60 s, so its event runs again rather
  // than reach the dead-letter queue.
  leaseSeconds: 10,
  async handler(event) {
    // Runs only for an intact event whose subject still holds the permission, once per id.
    console.log(
      JSON.stringify({
        level: 'info',
        type: 'example.event_ran',
        eventId: event.id,
        eventType: event.type,
        subject: event.subject,
      }),
    );
  },
});
