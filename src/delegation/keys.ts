/**
 * Gatehouse's own signing keys: a `current` key that signs, a `next` key published ahead of its
 * use, and optionally the `previous` one, still published after a rotation until the tokens it
 * signed have expired (so rotation never breaks a live token). Given as one secret holding a JSON
 * object of private JWKs (Ed25519 or P-256); the public halves form the JWKS document and the
 * verifier's inline key set, so no edge ever fetches Gatehouse's keys.
 */
import type { CryptoKey } from 'jose';
import { ConfigError } from '../errors.ts';
import { KID_PATTERN } from '../token/precheck.ts';

/** The algorithms Gatehouse signs with (RFC 8037 EdDSA over Ed25519; RFC 7518 ES256). */
export type IssuerAlgorithm = 'EdDSA' | 'ES256';

export const ISSUER_ALGORITHMS: readonly IssuerAlgorithm[] = ['EdDSA', 'ES256'];

const SLOTS = ['current', 'next', 'previous'] as const;
type Slot = (typeof SLOTS)[number];

/** One key of the set: the private JWK (for signing) and its public half. */
export interface IssuerKey {
  readonly kid: string;
  readonly alg: IssuerAlgorithm;
  /** Private JWK members (kty, crv, x, y?, d); never logged. */
  readonly privateJwk: Readonly<Record<string, string>>;
  /** Public JWK with kid, alg and use, as published. */
  readonly publicJwk: Readonly<Record<string, string>>;
}

export interface IssuerKeySet {
  readonly current: IssuerKey;
  readonly next: IssuerKey | undefined;
  readonly previous: IssuerKey | undefined;
}

const MEMBERS: Record<IssuerAlgorithm, { kty: string; crv: string; pub: readonly string[] }> = {
  EdDSA: { kty: 'OKP', crv: 'Ed25519', pub: ['x'] },
  ES256: { kty: 'EC', crv: 'P-256', pub: ['x', 'y'] },
};

const B64URL = /^[A-Za-z0-9_-]+$/;

function readKey(raw: unknown, field: string): IssuerKey {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new ConfigError(field, 'expected a private JWK object');
  }
  const jwk = raw as Record<string, unknown>;
  const alg = jwk.alg;
  if (alg !== 'EdDSA' && alg !== 'ES256') {
    throw new ConfigError(`${field}.alg`, 'expected EdDSA or ES256');
  }
  const shape = MEMBERS[alg];
  if (jwk.kty !== shape.kty || jwk.crv !== shape.crv) {
    throw new ConfigError(
      `${field}.kty`,
      `expected kty ${shape.kty} with crv ${shape.crv} for ${alg}`,
    );
  }
  const kid = jwk.kid;
  if (typeof kid !== 'string' || !KID_PATTERN.test(kid)) {
    throw new ConfigError(`${field}.kid`, 'expected a kid of visible ASCII characters');
  }
  const privateJwk: Record<string, string> = { kty: shape.kty, crv: shape.crv };
  for (const name of [...shape.pub, 'd']) {
    const value = jwk[name];
    // Only the member's name in the message: the value may be the private key.
    if (typeof value !== 'string' || !B64URL.test(value)) {
      throw new ConfigError(`${field}.${name}`, 'expected a base64url string');
    }
    privateJwk[name] = value;
  }
  const publicJwk: Record<string, string> = { kty: shape.kty, crv: shape.crv };
  for (const name of shape.pub) publicJwk[name] = privateJwk[name]!;
  publicJwk.kid = kid;
  publicJwk.alg = alg;
  publicJwk.use = 'sig';
  return {
    kid,
    alg,
    privateJwk: Object.freeze(privateJwk),
    publicJwk: Object.freeze(publicJwk),
  };
}

/**
 * Parses the key secret (`{ "current": JWK, "next": JWK, "previous"?: JWK }`). Errors name
 * `field` and the member at fault, never a value.
 */
export function parseIssuerKeys(text: unknown, field: string): IssuerKeySet {
  if (typeof text !== 'string' || text.trim() === '') {
    throw new ConfigError(field, 'is not set: expected the JSON key set (gatehouse keys generate)');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new ConfigError(field, 'expected JSON: { "current": JWK, "next": JWK }');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(field, 'expected an object { "current": JWK, "next": JWK }');
  }
  const record = value as Record<string, unknown>;
  for (const name of Object.keys(record)) {
    if (!(SLOTS as readonly string[]).includes(name)) {
      throw new ConfigError(`${field}.${name}`, 'unknown member; expected current, next, previous');
    }
  }
  const keys: Partial<Record<Slot, IssuerKey>> = {};
  for (const slot of SLOTS) {
    if (record[slot] !== undefined) keys[slot] = readKey(record[slot], `${field}.${slot}`);
  }
  if (keys.current === undefined) throw new ConfigError(`${field}.current`, 'required');
  const kids = new Set<string>();
  for (const slot of SLOTS) {
    const key = keys[slot];
    if (key === undefined) continue;
    // A kid is an exact-match lookup key: two keys with one kid would make it ambiguous.
    if (kids.has(key.kid))
      throw new ConfigError(`${field}.${slot}.kid`, 'each kid may appear once');
    kids.add(key.kid);
  }
  return { current: keys.current, next: keys.next, previous: keys.previous };
}

/** Every key a verifier accepts, current first. */
export function verificationKeys(set: IssuerKeySet): IssuerKey[] {
  return [set.current, set.next, set.previous].filter((k): k is IssuerKey => k !== undefined);
}

/** The public JWKS document served at `<prefix>/jwks.json`. */
export function publicJwks(set: IssuerKeySet): { keys: Record<string, string>[] } {
  return { keys: verificationKeys(set).map((key) => ({ ...key.publicJwk })) };
}

/** The algorithms of the set's keys, for the verifier's allowlist. */
export function keyAlgorithms(set: IssuerKeySet): IssuerAlgorithm[] {
  return [...new Set(verificationKeys(set).map((key) => key.alg))];
}

const GENERATE = {
  EdDSA: { name: 'Ed25519' },
  ES256: { name: 'ECDSA', namedCurve: 'P-256' },
} as const;

function randomKid(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(9));
  let text = '';
  for (const byte of bytes) text += byte.toString(16).padStart(2, '0');
  return `gh-${text}`;
}

/** A fresh private JWK (WebCrypto, so it runs on Node and workerd alike). */
export async function generateIssuerKey(
  alg: IssuerAlgorithm = 'EdDSA',
  kid: string = randomKid(),
): Promise<Record<string, string>> {
  const pair = (await crypto.subtle.generateKey(GENERATE[alg], true, ['sign', 'verify'])) as {
    privateKey: CryptoKey;
  };
  const jwk = (await crypto.subtle.exportKey('jwk', pair.privateKey)) as unknown as Record<
    string,
    unknown
  >;
  const out: Record<string, string> = { kty: String(jwk.kty), crv: String(jwk.crv) };
  for (const name of ['x', 'y', 'd']) {
    if (typeof jwk[name] === 'string') out[name] = jwk[name] as string;
  }
  out.kid = kid;
  out.alg = alg;
  return out;
}

/** A new key set: a current key and the next one. */
export async function generateIssuerKeySet(alg: IssuerAlgorithm = 'EdDSA'): Promise<string> {
  return JSON.stringify({
    current: await generateIssuerKey(alg),
    next: await generateIssuerKey(alg),
  });
}

/**
 * One rotation step: `next` starts signing, the old `current` stays published as `previous`
 * (tokens it signed live at most the maximum lifetime), and a new `next` is published.
 */
export async function rotateIssuerKeySet(
  text: string,
  field: string,
  alg?: IssuerAlgorithm,
): Promise<string> {
  const set = parseIssuerKeys(text, field);
  const parsed = JSON.parse(text) as Record<string, unknown>;
  const fresh = await generateIssuerKey(alg ?? set.current.alg);
  return JSON.stringify({
    current: parsed.next ?? (await generateIssuerKey(alg ?? set.current.alg)),
    next: fresh,
    previous: parsed.current,
  });
}
