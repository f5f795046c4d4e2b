/**
 * Bearer credentials from an Authorization header (RFC 6750 §2.1):
 * `Bearer` (case-insensitive scheme, RFC 7235 §2.1), one space, a b64token.
 *
 * Only the scheme is checked here. The token's characters are checked by the verifier's
 * pre-check (stricter than b64token: the JWS compact form) before anything is parsed, and a
 * verified-token cache hit is by construction a string that passed it; scanning the whole
 * token here with a regex cost a third of a cached decision.
 */
import { TokenError } from '../errors.ts';

const SCHEME = 'bearer ';

/** The token from an Authorization header; throws token_missing or token_malformed. */
export function extractBearer(authorizationHeader: string | null | undefined): string {
  if (
    authorizationHeader === null ||
    authorizationHeader === undefined ||
    authorizationHeader === ''
  ) {
    throw new TokenError('token_missing', 'no Authorization header');
  }
  if (typeof authorizationHeader !== 'string' || !hasBearerScheme(authorizationHeader)) {
    throw new TokenError('token_malformed', 'Authorization is not a Bearer credential');
  }
  const token = authorizationHeader.slice(SCHEME.length);
  // An empty credential, or a second space (`Bearer  x`), is not a b64token.
  if (token === '' || token.charCodeAt(0) === 0x20) {
    throw new TokenError('token_malformed', 'Authorization is not a Bearer credential');
  }
  return token;
}

function hasBearerScheme(header: string): boolean {
  if (header.length <= SCHEME.length || header.charCodeAt(SCHEME.length - 1) !== 0x20) return false;
  for (let i = 0; i < SCHEME.length - 1; i++) {
    // ASCII letters fold to lower case with | 0x20 (only 'B' and 'b' fold to 'b', and so on).
    if ((header.charCodeAt(i) | 0x20) !== SCHEME.charCodeAt(i)) return false;
  }
  return true;
}
