/** Signed events (issue 13): sign at the edge, verify and re-check when the work runs. */
export {
  EVENT_PRINCIPAL_ISSUER,
  type EventClaims,
  type EventContext,
  eventPrincipal,
  readEvent,
  type VerifiedEvent,
} from './claims.ts';
export {
  compileEvents,
  DEFAULT_EVENT_MAX_BYTES,
  DEFAULT_EVENT_MAX_TTL_SECONDS,
  DEFAULT_EVENT_TTL_SECONDS,
  type EventsConfig,
  type EventsDocument,
  eventIssuerOptions,
  MAX_EVENT_TTL_SECONDS,
} from './config.ts';
export {
  type AllowedEvent,
  type ConsumerLogEntry,
  defaultConsumerLog,
  type EventHandler,
  type EventVerifierLike,
  eventOf,
  type Outcome,
  processEvent,
} from './consumer.ts';
export {
  type EventAudit,
  type EventDecision,
  type EventRequest,
  type EventsOptions,
  eventsFor,
  GatehouseEvents,
  parseEventRequest,
  type SignedEvent,
  type SignOutcome,
} from './events.ts';
export {
  MemoryProcessedEvents,
  type ProcessedEvents,
  type ProcessedResult,
} from './idempotency.ts';
