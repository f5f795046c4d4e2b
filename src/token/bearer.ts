/**
 * Bearer credentials from an Authorization header (RFC 6750 §2.1):
 * `Bearer` (case-insensitive scheme, RFC 7235 §2.1), one space, a b64token.
 */
import { TokenError } from '../errors.ts';

const BEARER = /^Bearer ([A-Za-z0-9\-._~+/]+=*)$/i;

/** The token from an Authorization header; throws token_missing or token_malformed. */
export function extractBearer(authorizationHeader: string | null | undefined): string {
  if (
    authorizationHeader === null ||
    authorizationHeader === undefined ||
    authorizationHeader === ''
  ) {
    throw new TokenError('token_missing', 'no Authorization header');
  }
  const match = typeof authorizationHeader === 'string' ? BEARER.exec(authorizationHeader) : null;
  if (match === null)
    throw new TokenError('token_malformed', 'Authorization is not a Bearer credential');
  return match[1]!;
}
