/**
 * The strict format pre-check that runs before any signature work: size, canonical compact
 * form, strict base64url, UTF-8, JSON objects without duplicate names, and header members
 * this verifier refuses to interpret. Everything later reads the header and payload parsed here,
 * once.
 */
import { TokenError } from '../errors.ts';
import { decodeCanonicalBase64url } from './base64url.ts';
import { parseJsonObject } from './json.ts';
import type { PrecheckedToken } from './options.ts';

/** Default size cap, bytes (8 KiB). */
export const DEFAULT_MAX_TOKEN_BYTES = 8192;

/**
 * The positions of the two dots of a compact JWS, or null: exactly three non-empty segments, so a
 * JWE (five parts, RFC 7516 §7.1) and an unsecured JWS with an empty signature never pass. The
 * characters are not looked at here: each segment must then be canonical base64url (strict decode,
 * base64url.ts), which together is the rule /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/
 * (SECURITY.md) without a pattern scan of the whole token (issue 11). The property test in
 * precheck.test.ts holds the two equal.
 */
export function splitCompact(token: string): { firstDot: number; secondDot: number } | null {
  const firstDot = token.indexOf('.');
  if (firstDot < 1) return null;
  const secondDot = token.indexOf('.', firstDot + 1);
  if (
    secondDot <= firstDot + 1 ||
    secondDot === token.length - 1 ||
    token.indexOf('.', secondDot + 1) !== -1
  ) {
    return null;
  }
  return { firstDot, secondDot };
}

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

function decodeSegment(segment: string, part: 'header' | 'payload'): Uint8Array {
  const bytes = decodeCanonicalBase64url(segment);
  if (bytes === null) throw malformed(`token ${part} is not canonical base64url`);
  return bytes;
}

function parseSegment(bytes: Uint8Array, part: 'header' | 'payload'): Record<string, unknown> {
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
 * Headers already parsed and checked, by their exact base64url segment. An issuer signs every
 * token of a key with the same header, so on a stream of fresh tokens this saves decoding,
 * parsing and checking it each time (issue 11). A pure memo: the same segment always yields the
 * same verdict; only headers that passed are kept, and only flat ones (every member a string,
 * number, boolean or null), so freezing the object makes it immutable when shared. Bounded:
 * emptied when full, so a stream of distinct headers costs at most what it cost before.
 */
const checkedHeaders = new Map<string, Readonly<Record<string, unknown>>>();
const MAX_CHECKED_HEADERS = 64;

/** The last header taken from the memo: a stream of one issuer's tokens skips even the lookup. */
let lastSegment = '';
let lastHeader: Readonly<Record<string, unknown>> | undefined;

function checkedHeader(token: string, firstDot: number): Readonly<Record<string, unknown>> {
  if (
    firstDot === lastSegment.length &&
    lastHeader !== undefined &&
    token.startsWith(lastSegment)
  ) {
    return lastHeader;
  }
  const segment = token.slice(0, firstDot);
  const known = checkedHeaders.get(segment);
  if (known !== undefined) {
    lastSegment = segment;
    lastHeader = known;
    return known;
  }
  const header = parseSegment(decodeSegment(segment, 'header'), 'header');
  checkHeader(header);
  for (const name in header) {
    const value = header[name];
    if (typeof value === 'object' && value !== null) return header;
  }
  if (checkedHeaders.size >= MAX_CHECKED_HEADERS) checkedHeaders.clear();
  checkedHeaders.set(segment, Object.freeze(header));
  return header;
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
  // Length in UTF-16 units; a non-ASCII character fails a segment's strict decode, so for every
  // token that passes, this is its size in bytes.
  if (token.length > maxBytes) throw new TokenError('token_too_large', 'token exceeds size limit');
  const dots = splitCompact(token);
  if (dots === null) throw malformed('token is not a compact JWS');
  const { firstDot, secondDot } = dots;
  // Every segment is decoded strictly before any is interpreted, so a token with a character
  // outside the alphabet anywhere is malformed whatever its header says (as when a pattern scan
  // came first). A header seen before is a segment that decoded strictly then.
  const signature = decodeCanonicalBase64url(token.slice(secondDot + 1));
  if (signature === null) throw malformed('token signature is not canonical base64url');
  const payloadBytes = decodeSegment(token.slice(firstDot + 1, secondDot), 'payload');
  const header = checkedHeader(token, firstDot);
  const payload = parseSegment(payloadBytes, 'payload');
  return { header, payload, signature, signingInput: token.slice(0, secondDot) };
}
