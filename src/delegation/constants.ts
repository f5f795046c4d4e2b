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
