/**
 * Forgeries against RSA public keys with a weak public exponent, for tests in Node and workerd
 * (Web Crypto only). With e = 1, verification computes s^1 mod n = s, so the "signature" of any
 * message is its encoded form as an integer (RFC 8017 §8.2.2, §8.1.2): no private key needed.
 */
import * as jose from 'jose';

const encoder = new TextEncoder();

function b64url(bytes: Uint8Array): string {
  let binary = '';
  for (const byte of bytes) binary += String.fromCharCode(byte);
  return btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

async function sha256(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest('SHA-256', data as Uint8Array<ArrayBuffer>));
}

// RFC 8017 §9.2 note 1: the DER DigestInfo prefix for SHA-256.
const SHA256_DIGEST_INFO = [
  0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
  0x00, 0x04, 0x20,
];

/** EMSA-PKCS1-v1_5 (RFC 8017 §9.2): 00 01 FF.. 00 DigestInfo H, `k` bytes. */
async function emsaPkcs1(message: Uint8Array, k: number): Promise<Uint8Array> {
  const t = [...SHA256_DIGEST_INFO, ...(await sha256(message))];
  const em = new Uint8Array(k).fill(0xff);
  em[0] = 0;
  em[1] = 1;
  em[k - t.length - 1] = 0;
  em.set(t, k - t.length);
  return em;
}

async function mgf1(seed: Uint8Array, length: number): Promise<Uint8Array> {
  const out = new Uint8Array(length);
  for (let counter = 0, o = 0; o < length; counter++, o += 32) {
    const input = new Uint8Array(seed.length + 4);
    input.set(seed);
    new DataView(input.buffer).setUint32(seed.length, counter);
    out.set((await sha256(input)).subarray(0, Math.min(32, length - o)), o);
  }
  return out;
}

/** EMSA-PSS (RFC 8017 §9.1.1) with SHA-256, MGF1-SHA-256 and a 32-byte salt, for a `bits` modulus. */
async function emsaPss(message: Uint8Array, bits: number): Promise<Uint8Array> {
  const emBits = bits - 1;
  const emLen = Math.ceil(emBits / 8);
  const salt = crypto.getRandomValues(new Uint8Array(32));
  const mPrime = new Uint8Array(8 + 32 + 32);
  mPrime.set(await sha256(message), 8);
  mPrime.set(salt, 40);
  const h = await sha256(mPrime);
  const db = new Uint8Array(emLen - 32 - 1);
  db[db.length - 32 - 1] = 1;
  db.set(salt, db.length - 32);
  const mask = await mgf1(h, db.length);
  for (let i = 0; i < db.length; i++) db[i]! ^= mask[i]!;
  db[0]! &= 0xff >> (8 * emLen - emBits);
  const em = new Uint8Array(emLen);
  em.set(db);
  em.set(h, db.length);
  em[emLen - 1] = 0xbc;
  return em;
}

export interface WeakRsaKey {
  /** Public JWK with the weak `e`, `kid` and no `alg`. */
  readonly jwk: jose.JWK & { kid: string };
  /** Modulus length, bits. */
  readonly bits: number;
}

/**
 * A real 2048-bit RSA modulus paired with public exponent `e` (base64url, as written in the JWK,
 * so leading zero bytes can be tested).
 */
export async function weakRsaKey(kid: string, e = 'AQ'): Promise<WeakRsaKey> {
  const { publicKey } = await jose.generateKeyPair('RS256', {
    extractable: true,
    modulusLength: 2048,
  });
  const { n } = await jose.exportJWK(publicKey);
  return { jwk: { kty: 'RSA', n: n!, e, kid }, bits: 2048 };
}

function fromB64url(text: string): Uint8Array {
  const binary = atob(text.replace(/-/g, '+').replace(/_/g, '/'));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

function der(tag: number, content: Uint8Array): Uint8Array {
  const n = content.length;
  const length = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : [0x82, n >> 8, n & 0xff];
  return Uint8Array.from([tag, ...length, ...content]);
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((p) => [...p]));
}

/** A DER INTEGER for an unsigned value: a zero byte in front when the high bit is set. */
function unsigned(bytes: Uint8Array): Uint8Array {
  return der(0x02, (bytes[0] ?? 0) & 0x80 ? concat(Uint8Array.of(0), bytes) : bytes);
}

// AlgorithmIdentifier { rsaEncryption, NULL } (RFC 3279 §2.3.1).
const RSA_ALGORITHM = Uint8Array.from([
  0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00,
]);

/**
 * The key as an SPKI PEM, built by hand: a runtime that refuses the key (workerd with e = 1)
 * cannot export it, and configuration must refuse it before any import anyway.
 */
export function rsaSpkiPem(jwk: { n?: string | undefined; e?: string | undefined }): string {
  const rsaKey = der(0x30, concat(unsigned(fromB64url(jwk.n!)), unsigned(fromB64url(jwk.e!))));
  const spki = der(0x30, concat(RSA_ALGORITHM, der(0x03, concat(Uint8Array.of(0), rsaKey))));
  let binary = '';
  for (const byte of spki) binary += String.fromCharCode(byte);
  const body = btoa(binary).replace(/.{64}/g, '$&\n');
  return `-----BEGIN PUBLIC KEY-----\n${body.trimEnd()}\n-----END PUBLIC KEY-----\n`;
}

/**
 * A compact JWS over `header` and `payload` that verifies under `key` when its exponent is 1:
 * the signature is the encoded message itself. RS256 or PS256.
 */
export async function forgeExponentOne(
  key: WeakRsaKey,
  alg: 'RS256' | 'PS256',
  header: Record<string, unknown>,
  payload: Record<string, unknown>,
): Promise<string> {
  const input = `${b64url(encoder.encode(JSON.stringify({ alg, ...header })))}.${b64url(encoder.encode(JSON.stringify(payload)))}`;
  const message = encoder.encode(input);
  const k = key.bits / 8;
  let signature: Uint8Array;
  if (alg === 'RS256') signature = await emsaPkcs1(message, k);
  else {
    // The integer EM is written out as k bytes (I2OSP), so a leading zero byte is kept.
    const em = await emsaPss(message, key.bits);
    signature = new Uint8Array(k);
    signature.set(em, k - em.length);
  }
  return `${input}.${b64url(signature)}`;
}
