/**
 * Names shared by the verifier (which must refuse Gatehouse's own token type from any external
 * issuer) and the delegation code. No imports, so the token layer can read them.
 */

/** `typ` of a Gatehouse delegation token (RFC 8725 §3.11 explicit typing). */
export const DELEGATION_TYPE = 'gatehouse-delegation+jwt';

/** `typ` of a Gatehouse signed event (issue 13): accepted only at event verification. */
export const EVENT_TYPE = 'gatehouse-event+jwt';

/** RFC 8693 §2.1 grant type of the token endpoint. */
export const TOKEN_EXCHANGE_GRANT = 'urn:ietf:params:oauth:grant-type:token-exchange';

/** RFC 8693 §3 token type identifiers accepted for subject and actor tokens. */
export const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
export const TOKEN_TYPE_ACCESS_TOKEN = 'urn:ietf:params:oauth:token-type:access_token';

/** Default and largest delegation lifetime, seconds (the issue: 15 minutes by default). */
export const DEFAULT_MAX_LIFETIME_SECONDS = 900;
export const MAX_MAX_LIFETIME_SECONDS = 86_400;

/** Default and largest `act` chain depth (RFC 8693 §4.1 nesting). */
export const DEFAULT_MAX_DEPTH = 3;
export const MAX_MAX_DEPTH = 8;

/**
 * Claims a delegation token carries so revocation keeps reaching it (issue 12 review, F1): a
 * token minted at exchange has its own fresh `iat` and `jti`, which a sign-out or a revoked
 * parent would never match. The revocation follower reads them; nothing else trusts them.
 *
 * - `subject_iat`: the `iat` of the delegator's original token (for a standing grant, the first
 *   exchange's time), checked against the delegator's sign-out not-before instead of `iat`.
 * - `actor_iats`: per actor of `act` (current first), the `iat` of the token it authenticated
 *   with, checked against that actor's not-before.
 * - `parents`: the `jti`s of every token the chain was built from (subject and actor tokens,
 *   and theirs), each checked against revoked token ids.
 */
export const SUBJECT_IAT_CLAIM = 'subject_iat';
export const ACTOR_IATS_CLAIM = 'actor_iats';
export const PARENTS_CLAIM = 'parents';

/**
 * Largest `scope` parameter the token endpoint reads: characters (permissions are ASCII, so
 * bytes) and items. A scope the edges could never accept in a token (maxTokenBytes, 8 KiB by
 * default) is refused before any work, and audit lines stay bounded.
 */
export const MAX_SCOPE_BYTES = 2048;
export const MAX_SCOPE_ITEMS = 64;
