/**
 * Gatehouse: the platform-free core. Platform entry points live in handlers/; subpath exports
 * for each platform arrive with their edges.
 */

export type { EventErrorCode, StoreErrorCode, TokenErrorCode } from './errors.ts';
export { ConfigError, EventError, GatehouseError, StoreError, TokenError } from './errors.ts';
export type {
  AllowedEvent,
  ConsumerLogEntry,
  EventDecision,
  EventHandler,
  EventRequest,
  EventsOptions,
  Outcome,
  ProcessedEvents,
  ProcessedResult,
  SignedEvent,
  SignOutcome,
} from './events/index.ts';
export {
  eventsFor,
  GatehouseEvents,
  MemoryProcessedEvents,
  processEvent,
} from './events/index.ts';
export type {
  DecisionLogConfig,
  DecisionLoggerOptions,
  DecisionLogLevel,
  DecisionLogLine,
  DecisionLogTarget,
  LoggedRequest,
} from './logging/index.ts';
export {
  consoleJsonWriter,
  consoleObjectWriter,
  DECISION_LOG_ENV,
  DECISION_LOG_TYPE,
  DecisionLogger,
  readDecisionLogConfig,
  tokenDigest,
} from './logging/index.ts';
export {
  compilePermissions,
  compileRoles,
  isValidPermission,
  permissionMatches,
} from './permissions/index.ts';
export type {
  CompiledPolicy,
  DecisionRequest,
  GatehouseOptions,
  PolicyDocument,
} from './policy/index.ts';
export {
  compilePolicy,
  Gatehouse,
  parsePolicyText,
} from './policy/index.ts';
export type {
  ChangeInput,
  FeedAnswer,
  FeedChange,
  FeedSource,
  FeedWriter,
  FollowerOptions,
  Refusal,
  RevocationReason,
} from './revocation/index.ts';
export {
  feedKeys,
  MemoryFeed,
  RevocationFollower,
  TrackedFeed,
} from './revocation/index.ts';
export {
  CachedStore,
  ClaimsStore,
  createFileStore,
  MemoryStore,
  parsePermissionData,
} from './stores/index.ts';
export type { IssuerOptions, TokenVerifier, VerifierOptions } from './token/index.ts';
export { createVerifier, extractBearer } from './token/index.ts';
export type {
  Actor,
  Conditions,
  Decision,
  Grant,
  PermissionMatch,
  PermissionStore,
  Principal,
  ReasonCode,
  RequestContext,
  RoleRecord,
  UserRecord,
} from './types.ts';
