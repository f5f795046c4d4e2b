/**
 * The strict format pre-check that runs before any signature work: size, canonical compact
 * form, strict base64url, UTF-8, JSON objects without duplicate names, and header members
 * this verifier refuses to interpret. Everything later reads the header and payload parsed here,
 * once.
 */
import { TokenError } from '../errors.ts';
import { decodeBase64url } from './base64url.ts';
import { parseJsonObject } from './json.ts';
import type { PrecheckedToken } from './options.ts';

/** Default size cap, bytes (8 KiB). */
export const DEFAULT_MAX_TOKEN_BYTES = 8192;

// Exactly three non-empty base64url segments: no whitespace, padding, `+`, `/`, or extra dots,
// so a JWE (five parts, RFC 7516 §7.1) and an unsecured JWS with an empty signature never pass.
const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;

/**
 * Longest accepted `kid`, characters. Real ids are far shorter (UUIDs, 40-hex thumbprints,
 * 44-character Cognito ids), but a Cloud KMS key-version name used as a kid
 * (`projects/…/locations/…/keyRings/…/cryptoKeys/…/cryptoKeyVersions/n`) or a DID URL
 * (`did:key:…#…`) runs to 100–230; 256 admits them and still bounds log lines and map keys.
 */
export const MAX_KID_LENGTH = 256;

/**
 * A `kid` is visible ASCII (0x21–0x7E), 1..MAX_KID_LENGTH characters: everything real providers
 * issue (RFC 7520's `bilbo.baggins@hobbiton.example`, URNs and DID URLs with `:` and `#`, base64
 * with `+/=`), nothing that can break a log line (control characters, whitespace, non-ASCII).
 * It is only ever an exact Map key, never a path, URL, query or command, so `../../etc/passwd`
 * or `k' OR 1=1` passes here and simply matches no key.
 */
export const KID_PATTERN = new RegExp(`^[\\x21-\\x7E]{1,${MAX_KID_LENGTH}}$`);

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function malformed(message: string): TokenError {
  return new TokenError('token_malformed', message);
}

function decodeJsonSegment(segment: string, part: 'header' | 'payload'): Record<string, unknown> {
  const bytes = decodeBase64url(segment);
  if (bytes === null) throw malformed(`token ${part} is not canonical base64url`);
  let text: string;
  try {
    text = utf8.decode(bytes);
  } catch {
    throw malformed(`token ${part} is not valid UTF-8`);
  }
  const value = parseJsonObject(text);
  if (value === null) {
    throw malformed(`token ${part} is not a JSON object with unique member names`);
  }
  return value;
}

/** Normalises a media type per RFC 7515 §4.1.9: case-insensitive, `application/` implied. */
export function normalizeMediaType(value: string): string {
  const lower = value.toLowerCase();
  if (lower.startsWith('application/') && lower.indexOf('/', 12) === -1) return lower.slice(12);
  return lower;
}

function checkHeader(header: Record<string, unknown>): void {
  if (typeof header.alg !== 'string' || header.alg.length === 0) {
    throw malformed('token header alg must be a non-empty string');
  }
  // RFC 7515 §4.1.11: a recipient that does not understand every listed extension MUST reject.
  // We understand none, so any `crit` is refused.
  if (header.crit !== undefined) throw new TokenError('token_unsupported', 'crit is not supported');
  // RFC 7797: `b64` changes what the signature covers; refused in any form.
  if (header.b64 !== undefined) throw new TokenError('token_unsupported', 'b64 is not supported');
  // A JWE header (RFC 7516 §4.1.2) is never a signed token.
  if (header.enc !== undefined) throw new TokenError('token_unsupported', 'JWE is not supported');
  if (header.cty !== undefined) {
    if (typeof header.cty !== 'string') throw malformed('token header cty must be a string');
    // RFC 7519 §5.2: `cty: JWT` marks a nested JWT; we never unwrap one. Only the media type
    // counts (parameters after `;` and surrounding spaces are ignored), in any letter case.
    const mediaType = header.cty.split(';', 1)[0]!.trim();
    if (normalizeMediaType(mediaType) === 'jwt') {
      throw new TokenError('token_unsupported', 'nested JWTs are not supported');
    }
  }
  if (
    header.kid !== undefined &&
    (typeof header.kid !== 'string' || !KID_PATTERN.test(header.kid))
  ) {
    throw malformed('token header kid has an unexpected form');
  }
  // jku, x5u, jwk and x5c are deliberately never read: keys come only from configuration.
}

/**
 * Checks and parses a compact JWS without verifying it. Throws TokenError:
 * `token_too_large` above `maxBytes`, `token_malformed` for any non-canonical form, and
 * `token_unsupported` for crit, b64, enc or a nested JWT.
 */
export function precheckToken(
  token: string,
  maxBytes: number = DEFAULT_MAX_TOKEN_BYTES,
): PrecheckedToken {
  if (typeof token !== 'string' || token.length === 0) {
    throw new TokenError('token_missing', 'no token');
  }
  // Length in UTF-16 units; any non-ASCII token fails the pattern next, so for every token that
  // passes, this is its size in bytes.
  if (token.length > maxBytes) throw new TokenError('token_too_large', 'token exceeds size limit');
  if (!COMPACT_JWS.test(token)) throw malformed('token is not a compact JWS');
  const firstDot = token.indexOf('.');
  const secondDot = token.indexOf('.', firstDot + 1);
  const header = decodeJsonSegment(token.slice(0, firstDot), 'header');
  checkHeader(header);
  const payload = decodeJsonSegment(token.slice(firstDot + 1, secondDot), 'payload');
  const signature = decodeBase64url(token.slice(secondDot + 1));
  if (signature === null) throw malformed('token signature is not canonical base64url');
  return { header, payload, signature, signingInput: token.slice(0, secondDot) };
}
