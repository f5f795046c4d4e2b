/** Delegation: Gatehouse as a small token issuer (RFC 8693), platform-free. */

export {
  type ActorRule,
  type ActorRuleDocument,
  compileDelegation,
  DEFAULT_KEYS_ENV,
  type DelegationConfig,
  type DelegationDocument,
  ruleFor,
  selfIssuerOptions,
} from './config.ts';
export {
  DEFAULT_MAX_DEPTH,
  DEFAULT_MAX_LIFETIME_SECONDS,
  DELEGATION_TYPE,
  EVENT_TYPE,
  MAX_SCOPE_BYTES,
  MAX_SCOPE_ITEMS,
  TOKEN_EXCHANGE_GRANT,
  TOKEN_TYPE_ACCESS_TOKEN,
  TOKEN_TYPE_JWT,
} from './constants.ts';
export { type ExchangeInput, type ExchangeResult, planExchange } from './exchange.ts';
export {
  generateIssuerKey,
  generateIssuerKeySet,
  ISSUER_ALGORITHMS,
  type IssuerAlgorithm,
  type IssuerKey,
  type IssuerKeySet,
  parseIssuerKeys,
  publicJwks,
  rotateIssuerKeySet,
  verificationKeys,
} from './keys.ts';
export {
  type ActClaim,
  actClaim,
  createSigner,
  type DelegationClaims,
  type DelegationSigner,
  encodeBase64url,
  newTokenId,
} from './mint.ts';
export {
  type DelegationRefusal,
  type DelegationView,
  delegationView,
  describeChain,
  MAX_NARROWED_ENTRIES,
  narrowEntries,
  type Refusal,
  refusalFor,
  withStanding,
} from './rule.ts';
export {
  listCovers,
  listMatches,
  meetPatterns,
  parseScope,
  patternCovers,
  patternsOverlap,
} from './scope.ts';
export {
  actorSegment,
  encodeActor,
  ISSUER_MARK,
  isWellFormed,
  STANDING_CLAIM,
  STANDING_PREFIX,
  type StandingCeiling,
  standingCeiling,
  standingDenied,
  standingDenies,
  standingGrant,
  standingSegments,
  TOKEN_TYPE_STANDING,
} from './standing.ts';
