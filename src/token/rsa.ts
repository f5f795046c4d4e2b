/**
 * RSA public-key checks done by us, before and after import, because runtimes differ: Node
 * (WebCrypto and node:crypto alike) imports a key with public exponent 1 (then s^e mod n = s, so
 * the "signature" of any message is its own encoding and anyone can forge), workerd refuses it.
 * Every key source and both signature backends run the same rule here, so no runtime decides
 * alone.
 */
import { MIN_RSA_BITS } from './algorithms.ts';

/** Why an RSA key is refused, or null when it is acceptable. Never contains key material. */
export type RsaKeyProblem =
  | 'modulus under 2048 bits'
  | 'public exponent even, under 3 or over 32 bits';

/** The value without leading zero bytes: base64urlUInt and DER INTEGERs may carry them. */
function stripZeros(bytes: Uint8Array): Uint8Array {
  let i = 0;
  while (i < bytes.length && bytes[i] === 0) i++;
  return bytes.subarray(i);
}

/** Bit length of a big-endian unsigned integer. */
export function bitLength(bytes: Uint8Array): number {
  const value = stripZeros(bytes);
  if (value.length === 0) return 0;
  return (value.length - 1) * 8 + (32 - Math.clz32(value[0]!));
}

/**
 * The rule for an RSA public key given as big-endian unsigned integers of any size: a modulus of
 * at least 2048 bits (RFC 7518 §3.3, §3.5) and an odd public exponent of at least 3 (an even one
 * is never valid, RFC 8017 §3.1; e = 1 makes verification the identity).
 */
export function rsaKeyProblem(n: Uint8Array, e: Uint8Array): RsaKeyProblem | null {
  if (bitLength(n) < MIN_RSA_BITS) return 'modulus under 2048 bits';
  return weakExponent(e) ? 'public exponent even, under 3 or over 32 bits' : null;
}

/**
 * Even (the low byte decides, whatever the size), 0, 1, 2 (with any leading zero bytes), or wider
 * than 32 bits. The width cap matters: e = lcm(p-1, q-1) + 1 is odd and acts as e = 1 (every s
 * satisfies s^e = s mod n), so anyone could forge; such an e is as wide as the modulus, while real
 * exponents (3, 65537) fit in 17 bits and workerd's BoringSSL already refuses more than 33.
 */
function weakExponent(e: Uint8Array): boolean {
  const exponent = stripZeros(e);
  const last = exponent[exponent.length - 1] ?? 0;
  return (last & 1) === 0 || (exponent.length === 1 && last < 3) || exponent.length > 4;
}

/**
 * The same rule on an imported key, read from what the runtime reports: WebCrypto's
 * RsaHashedKeyAlgorithm (modulusLength, publicExponent) or node:crypto's asymmetricKeyDetails
 * (see rsaImportedProblem). A key that does not report them is refused.
 */
export function rsaCryptoKeyProblem(key: { algorithm: unknown }): RsaKeyProblem | null {
  const algorithm = key.algorithm as { modulusLength?: unknown; publicExponent?: unknown };
  const e = algorithm.publicExponent;
  return rsaImportedProblem(algorithm.modulusLength, e instanceof Uint8Array ? e : null);
}

/** The rule on a modulus size in bits and a big-endian exponent as a runtime reports them. */
export function rsaImportedProblem(
  modulusBits: unknown,
  exponent: Uint8Array | null,
): RsaKeyProblem | null {
  const bits = typeof modulusBits === 'number' ? modulusBits : 0;
  if (bits < MIN_RSA_BITS) return 'modulus under 2048 bits';
  if (exponent === null || weakExponent(exponent)) {
    return 'public exponent even, under 3 or over 32 bits';
  }
  return null;
}

/** A non-negative bigint (node:crypto's publicExponent) as big-endian bytes. */
export function bigintBytes(value: bigint): Uint8Array {
  let hex = value.toString(16);
  if (hex.length % 2 === 1) hex = `0${hex}`;
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

// DER (X.690 §8, §10) for SubjectPublicKeyInfo (RFC 5280 §4.1) holding an RSAPublicKey
// (RFC 8017 §A.1.1). Only definite lengths, as DER requires.
const SEQUENCE = 0x30;
const INTEGER = 0x02;
const BIT_STRING = 0x03;
const OBJECT_IDENTIFIER = 0x06;

/** rsaEncryption (1.2.840.113549.1.1.1) and id-RSASSA-PSS (1.2.840.113549.1.1.10), content bytes. */
const RSA_OIDS = ['2a864886f70d010101', '2a864886f70d01010a'];

interface Tlv {
  readonly tag: number;
  readonly content: Uint8Array;
  /** Offset just past this element. */
  readonly end: number;
}

function readTlv(der: Uint8Array, offset: number): Tlv | null {
  if (offset + 2 > der.length) return null;
  const tag = der[offset]!;
  let length = der[offset + 1]!;
  let start = offset + 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    // Four length bytes address 4 GiB, far beyond any key; 0 would be BER's indefinite form.
    if (count === 0 || count > 4 || start + count > der.length) return null;
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + der[start + i]!;
    start += count;
  }
  const end = start + length;
  if (end > der.length) return null;
  return { tag, content: der.subarray(start, end), end };
}

function hex(bytes: Uint8Array): string {
  let out = '';
  for (const byte of bytes) out += byte.toString(16).padStart(2, '0');
  return out;
}

/**
 * The modulus and exponent of an RSA SubjectPublicKeyInfo in DER; 'not-rsa' for a well-formed
 * SPKI of another key type; null when the bytes are not an SPKI.
 */
export function readRsaSpki(der: Uint8Array): { n: Uint8Array; e: Uint8Array } | 'not-rsa' | null {
  const spki = readTlv(der, 0);
  if (spki === null || spki.tag !== SEQUENCE || spki.end !== der.length) return null;
  const algorithm = readTlv(spki.content, 0);
  if (algorithm === null || algorithm.tag !== SEQUENCE) return null;
  const oid = readTlv(algorithm.content, 0);
  if (oid === null || oid.tag !== OBJECT_IDENTIFIER) return null;
  const key = readTlv(spki.content, algorithm.end);
  if (key === null || key.tag !== BIT_STRING || key.end !== spki.content.length) return null;
  if (!RSA_OIDS.includes(hex(oid.content))) return 'not-rsa';
  // A BIT STRING's first content byte counts unused bits; a DER-encoded key has none.
  if (key.content[0] !== 0) return null;
  const body = key.content.subarray(1);
  const rsaKey = readTlv(body, 0);
  if (rsaKey === null || rsaKey.tag !== SEQUENCE || rsaKey.end !== body.length) return null;
  const n = readTlv(rsaKey.content, 0);
  if (n === null || n.tag !== INTEGER) return null;
  const e = readTlv(rsaKey.content, n.end);
  if (e === null || e.tag !== INTEGER || e.end !== rsaKey.content.length) return null;
  // A negative INTEGER (high bit set without a leading zero) is no modulus or exponent.
  if (((n.content[0] ?? 0x80) & 0x80) !== 0 || ((e.content[0] ?? 0x80) & 0x80) !== 0) return null;
  return { n: n.content, e: e.content };
}

/** The DER bytes of a PEM block's base64 body, or null when it is not valid base64. */
export function pemBody(pem: string): Uint8Array | null {
  const body = pem.replace(/-----(BEGIN|END) [A-Z ]+-----/g, '').replace(/\s+/g, '');
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(body) || body.length % 4 !== 0) return null;
  const binary = atob(body);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}
