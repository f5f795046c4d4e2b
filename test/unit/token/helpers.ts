/** Test helpers: real keys, hand-crafted tokens, a fake clock and a loopback JWKS server. */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { type CryptoKey, exportJWK, exportSPKI, generateKeyPair, type JWK } from 'jose';
import { beforeAll, describe, expect } from 'vitest';
import { TokenError, type TokenErrorCode } from '../../../src/errors.ts';
import type {
  Algorithm,
  IssuerOptions,
  TokenVerifier,
  VerifierOptions,
} from '../../../src/token/index.ts';
import { loadNodeCrypto, nodeCryptoBackend } from '../../../src/token/node-crypto.ts';
import type { SignatureBackend, VerifyingKey } from '../../../src/token/signature.ts';
import { createVerifierWith } from '../../../src/token/verifier.ts';
import { webCryptoBackend } from '../../../src/token/webcrypto.ts';

/**
 * Both signature backends (src/token/signature.ts): node:crypto, which Node picks, and WebCrypto,
 * which workerd uses. Every token security test runs under each (`eachBackend`).
 */
export const BACKENDS: readonly SignatureBackend[] = [
  nodeCryptoBackend(loadNodeCrypto()!),
  webCryptoBackend,
];

let current: SignatureBackend | null = null;

/**
 * Runs `body`'s tests once per signature backend; inside, `createVerifier` builds verifiers on
 * that backend. The backend is switched in a beforeAll, so verifiers must be built in hooks or
 * tests, not while the describe body is collected.
 */
export function eachBackend(body: (backend: SignatureBackend) => void): void {
  describe.each(BACKENDS)('signatures by $name', (backend) => {
    beforeAll(() => {
      current = backend;
    });
    body(backend);
  });
}

/** createVerifier on the backend of the enclosing `eachBackend` block. */
export function createVerifier(options: VerifierOptions): TokenVerifier {
  if (current === null) throw new Error('createVerifier outside eachBackend, or before its hook');
  return createVerifierWith(options, current);
}

/** A backend that counts key imports and signature verifications passed to `inner`. */
export function countingBackend(inner: SignatureBackend): SignatureBackend & {
  imports: number;
  verifies: number;
} {
  const counted = {
    name: inner.name,
    imports: 0,
    verifies: 0,
    importJwk: async (...args: Parameters<SignatureBackend['importJwk']>) => {
      counted.imports++;
      const key = await inner.importJwk(...args);
      return key === null ? null : count(key);
    },
    importSpki: async (...args: Parameters<SignatureBackend['importSpki']>) => {
      counted.imports++;
      return count(await inner.importSpki(...args));
    },
    importSecret: async (...args: Parameters<SignatureBackend['importSecret']>) => {
      counted.imports++;
      return count(await inner.importSecret(...args));
    },
  };
  const count = (key: VerifyingKey): VerifyingKey => ({
    signatureLength: key.signatureLength,
    verify(signature, data) {
      counted.verifies++;
      return key.verify(signature, data);
    },
  });
  return counted;
}

export const ISSUER = 'https://issuer.example.com/';
export const AUDIENCE = 'api://gatehouse';
/** Fixed test time: 2023-11-14T22:13:20Z. */
export const T0 = 1_700_000_000_000;
export const NOW_S = T0 / 1000;

export function b64url(input: string | Uint8Array): string {
  return Buffer.from(input).toString('base64url');
}

export function json(value: unknown): string {
  return b64url(JSON.stringify(value));
}

export class Clock {
  ms = T0;
  readonly now = (): number => this.ms;
  advance(seconds: number): void {
    this.ms += seconds * 1000;
  }
}

export interface TestKey {
  readonly alg: Algorithm;
  readonly kid: string;
  readonly privateKey: CryptoKey;
  readonly publicKey: CryptoKey;
  /** Public JWK with kid, without alg (the binding then comes from configuration). */
  readonly jwk: JWK;
  readonly pem: string;
}

export async function makeKey(alg: Algorithm, kid = `${alg.toLowerCase()}-1`): Promise<TestKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = { ...(await exportJWK(publicKey)), kid };
  return { alg, kid, privateKey, publicKey, jwk, pem: await exportSPKI(publicKey) };
}

export function signParams(alg: string): Parameters<typeof crypto.subtle.sign>[0] {
  const bits = Number(alg.slice(2));
  const hash = `SHA-${bits}`;
  if (alg.startsWith('RS')) return { name: 'RSASSA-PKCS1-v1_5' };
  if (alg.startsWith('PS')) return { name: 'RSA-PSS', saltLength: bits / 8 };
  if (alg.startsWith('ES')) return { name: 'ECDSA', hash };
  if (alg.startsWith('HS')) return { name: 'HMAC' };
  return { name: 'Ed25519' };
}

/** Signs raw header and payload JSON text (so duplicates and odd bytes survive). */
export async function signRaw(
  headerText: string | Uint8Array,
  payloadText: string | Uint8Array,
  key: CryptoKey,
  alg: string,
): Promise<string> {
  const input = `${b64url(headerText)}.${b64url(payloadText)}`;
  const signature = await crypto.subtle.sign(signParams(alg), key, new TextEncoder().encode(input));
  return `${input}.${b64url(new Uint8Array(signature))}`;
}

export function claims(extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    iss: ISSUER,
    sub: 'user-1',
    aud: AUDIENCE,
    iat: NOW_S,
    exp: NOW_S + 3600,
    ...extra,
  };
}

/** A token signed by `key` with the usual claims; header and claims can be overridden. */
export async function mint(
  key: TestKey,
  extraClaims: Record<string, unknown> = {},
  header: Record<string, unknown> = {},
): Promise<string> {
  const h = { alg: key.alg, typ: 'JWT', kid: key.kid, ...header };
  for (const name of Object.keys(h))
    if (h[name as keyof typeof h] === undefined) delete h[name as keyof typeof h];
  const c = claims(extraClaims);
  for (const name of Object.keys(c)) if (c[name] === undefined) delete c[name];
  return signRaw(JSON.stringify(h), JSON.stringify(c), key.privateKey, key.alg);
}

export function issuerWith(key: TestKey, extra: Partial<IssuerOptions> = {}): IssuerOptions {
  return {
    issuer: ISSUER,
    keys: { jwks: { keys: [key.jwk] } },
    audiences: [AUDIENCE],
    algorithms: [key.alg],
    ...extra,
  };
}

export function options(
  issuers: IssuerOptions[],
  clock: Clock,
  extra: Partial<VerifierOptions> = {},
): VerifierOptions {
  return { issuers, now: clock.now, ...extra };
}

/** Asserts that `promise` rejects with a TokenError of `code`. */
export async function expectCode(promise: Promise<unknown>, code: TokenErrorCode): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, `expected ${code}`).toBeInstanceOf(TokenError);
  expect((error as TokenError).code).toBe(code);
}

export function expectSyncCode(fn: () => unknown, code: TokenErrorCode): void {
  let error: unknown;
  try {
    fn();
  } catch (e) {
    error = e;
  }
  expect(error, `expected ${code}`).toBeInstanceOf(TokenError);
  expect((error as TokenError).code).toBe(code);
}

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

/** A real HTTP server on 127.0.0.1 whose behaviour a test can switch, counting requests. */
export class JwksServer {
  requests = 0;
  handler: Handler = (_req, res) => res.writeHead(404).end();
  readonly #server: Server;
  readonly #open = new Set<ServerResponse>();

  constructor() {
    this.#server = createServer((req, res) => {
      this.requests++;
      this.#open.add(res);
      res.on('close', () => this.#open.delete(res));
      this.handler(req, res);
    });
  }

  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.#server.address() as AddressInfo).port}`;
  }

  /** Serve this key set with status 200. */
  serve(keys: JWK[]): void {
    this.handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys }));
    };
  }

  fail(status = 500): void {
    this.handler = (_req, res) => res.writeHead(status).end('down');
  }

  /** Never answer (until the server closes). */
  hang(): void {
    this.handler = () => {};
  }

  async close(): Promise<void> {
    for (const res of this.#open) res.destroy();
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
