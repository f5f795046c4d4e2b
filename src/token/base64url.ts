/**
 * Strict base64url (RFC 4648 §5) without padding, as JWS compact serialization requires
 * (RFC 7515 §2, §C). Only the canonical encoding of a byte string is accepted: decoding then
 * re-encoding must give the input back, so a token has exactly one spelling (RFC 4648 §3.5).
 */

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
const INVALID = 255;
const LOOKUP = new Uint8Array(128).fill(INVALID);
for (let i = 0; i < ALPHABET.length; i++) LOOKUP[ALPHABET.charCodeAt(i)] = i;

function sextet(text: string, index: number): number {
  return LOOKUP[text.charCodeAt(index)] ?? INVALID;
}

/**
 * Decodes canonical unpadded base64url, or returns null. Rejects: the empty string, characters
 * outside the URL-safe alphabet (including `=`, `+`, `/`, whitespace), a length of 4k+1 (no byte
 * string encodes to it), and non-zero trailing bits in the last character. Checking the trailing
 * bits is equivalent to "decode, re-encode, compare" without the second pass.
 */
export function decodeBase64url(text: string): Uint8Array<ArrayBuffer> | null {
  const length = text.length;
  const rest = length & 3;
  if (length === 0 || rest === 1) return null;
  const out = new Uint8Array((length * 3) >> 2);
  const whole = length - rest;
  let o = 0;
  for (let i = 0; i < whole; i += 4) {
    const a = sextet(text, i);
    const b = sextet(text, i + 1);
    const c = sextet(text, i + 2);
    const d = sextet(text, i + 3);
    if ((a | b | c | d) > 63) return null;
    out[o++] = (a << 2) | (b >> 4);
    out[o++] = ((b & 15) << 4) | (c >> 2);
    out[o++] = ((c & 3) << 6) | d;
  }
  if (rest === 2) {
    const a = sextet(text, whole);
    const b = sextet(text, whole + 1);
    if ((a | b) > 63 || (b & 15) !== 0) return null;
    out[o] = (a << 2) | (b >> 4);
  } else if (rest === 3) {
    const a = sextet(text, whole);
    const b = sextet(text, whole + 1);
    const c = sextet(text, whole + 2);
    if ((a | b | c) > 63 || (c & 3) !== 0) return null;
    out[o++] = (a << 2) | (b >> 4);
    out[o] = ((b & 15) << 4) | (c >> 2);
  }
  return out;
}

interface NativeBuffer {
  from(
    text: string,
    encoding: 'base64url' | 'latin1',
  ): Uint8Array & {
    toString(encoding: 'base64url'): string;
  };
}

/**
 * Node's Buffer decodes base64url natively, several times faster than the loop above, but
 * leniently (it skips characters outside the alphabet, takes `+` and `/`, ignores trailing bits),
 * so its answer is only taken when encoding the bytes back gives the text exactly. null where
 * there is no Buffer (workerd). The Buffers are handed on as the Uint8Arrays they are (a view per
 * call cost an allocation on the fresh-token path); they only feed a decoder or a verify.
 */
const nativeBuffer: NativeBuffer | null = (() => {
  const buffer = (globalThis as { Buffer?: Partial<NativeBuffer> }).Buffer;
  return typeof buffer?.from === 'function' ? (buffer as NativeBuffer) : null;
})();

/**
 * decodeBase64url's answer for every string, decoded natively where the runtime can. Node's
 * encoder writes only the URL-safe alphabet, no padding and zero trailing bits, and a byte string
 * has one encoding, so "decodes and encodes back to the same text" is exactly the canonical rule:
 * any other character, a length of 4k+1, padding or non-zero trailing bits make the round trip
 * differ. On the fresh-token path this replaces a pattern scan of the whole token (issue 11); the
 * property test in precheck.test.ts holds it equal to the strict decoder.
 */
export function decodeCanonicalBase64url(text: string): Uint8Array | null {
  if (nativeBuffer === null) return decodeBase64url(text);
  if (text.length === 0) return null;
  const bytes = nativeBuffer.from(text, 'base64url');
  return bytes.toString('base64url') === text ? bytes : null;
}

const encoder = new TextEncoder();

/**
 * The bytes of an ASCII string (a JWS signing input, which the compact-form check limits to
 * ASCII): Latin-1 and UTF-8 agree there, and Node's Latin-1 encoder is the faster of the two.
 */
export function asciiBytes(text: string): Uint8Array {
  return nativeBuffer === null ? encoder.encode(text) : nativeBuffer.from(text, 'latin1');
}
