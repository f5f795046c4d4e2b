/**
 * The two signature backends (issue 11): node:crypto where the runtime has it, WebCrypto
 * elsewhere. Which one a verifier gets is decided by capability; whichever it gets, every token
 * must meet the same verdict. The other token tests run under both (`eachBackend`); here the two
 * are compared side by side on hostile signatures and keys, on the public test vectors (RFC 7515
 * Appendix A, RFC 8037 Appendix A.4) and on the shared decision table.
 */
import { constants, generateKeyPairSync, KeyObject, sign as nodeSign } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { TokenError } from '../../../src/errors.ts';
import { compilePolicy, Gatehouse } from '../../../src/policy/index.ts';
import { createFileStore } from '../../../src/stores/index.ts';
import { ALGORITHMS } from '../../../src/token/algorithms.ts';
import type { Algorithm, IssuerOptions, TokenVerifier } from '../../../src/token/index.ts';
import { detectBackend, type SignatureBackend } from '../../../src/token/signature.ts';
import { createVerifierWith } from '../../../src/token/verifier.ts';
import { type DecisionCase, demoDelegationKeys, demoToken } from '../../support/cases.ts';
import {
  AUDIENCE,
  BACKENDS,
  b64url,
  Clock,
  claims,
  ISSUER,
  json,
  makeKey,
  mint,
  signRaw,
  type TestKey,
} from './helpers.ts';

/** The verdict a verifier reaches: 'ok' or the TokenError code. */
async function verdict(verifier: TokenVerifier, token: string): Promise<string> {
  try {
    await verifier.verify(token);
    return 'ok';
  } catch (error) {
    if (error instanceof TokenError) return error.code;
    throw error;
  }
}

/** One verifier per backend on the same options; the verdicts of both on `token`. */
function pair(issuer: IssuerOptions, clock = new Clock()) {
  const verifiers = BACKENDS.map((backend) =>
    createVerifierWith({ issuers: [issuer], now: clock.now, tokenCache: false }, backend),
  );
  return (token: string) => Promise.all(verifiers.map((v) => verdict(v, token)));
}

const encoder = new TextEncoder();

describe('choosing the backend', () => {
  afterEach(() => {
    vi.unstubAllGlobals();
  });

  it('picks node:crypto on Node', () => {
    expect(detectBackend().name).toBe('node:crypto');
  });

  it('keeps WebCrypto on workerd, even where it offers a node:crypto (nodejs_compat)', () => {
    vi.stubGlobal('navigator', { userAgent: 'Cloudflare-Workers' });
    expect(detectBackend().name).toBe('webcrypto');
  });

  it('falls back to WebCrypto where the runtime offers no node:crypto', () => {
    const { getBuiltinModule } = process;
    try {
      (process as { getBuiltinModule?: unknown }).getBuiltinModule = undefined;
      expect(detectBackend().name).toBe('webcrypto');
    } finally {
      process.getBuiltinModule = getBuiltinModule;
    }
  });
});

// RFC 7515 Appendix A.1 to A.3 and RFC 8037 Appendix A.4: the published keys and JWSs.
const RFC7515_PAYLOAD =
  'eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ';
interface Vector {
  readonly name: string;
  readonly alg: Algorithm;
  readonly key: Record<string, string> | Uint8Array;
  readonly jws: string;
}
const VECTORS: readonly Vector[] = [
  {
    name: 'RFC 7515 A.1 (HS256)',
    alg: 'HS256',
    key: new Uint8Array(
      Buffer.from(
        'AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow',
        'base64url',
      ),
    ),
    jws: `eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.${RFC7515_PAYLOAD}.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk`,
  },
  {
    name: 'RFC 7515 A.2 (RS256)',
    alg: 'RS256',
    key: {
      kty: 'RSA',
      n: 'ofgWCuLjybRlzo0tZWJjNiuSfb4p4fAkd_wWJcyQoTbji9k0l8W26mPddxHmfHQp-Vaw-4qPCJrcS2mJPMEzP1Pt0Bm4d4QlL-yRT-SFd2lZS-pCgNMsD1W_YpRPEwOWvG6b32690r2jZ47soMZo9wGzjb_7OMg0LOL-bSf63kpaSHSXndS5z5rexMdbBYUsLA9e-KXBdQOS-UTo7WTBEMa2R2CapHg665xsmtdVMTBQY4uDZlxvb3qCo5ZwKh9kG4LT6_I5IhlJH7aGhyxXFvUK-DWNmoudF8NAco9_h9iaGNj8q2ethFkMLs91kzk2PAcDTW9gb54h4FRWyuXpoQ',
      e: 'AQAB',
    },
    jws: `eyJhbGciOiJSUzI1NiJ9.${RFC7515_PAYLOAD}.cC4hiUPoj9Eetdgtv3hF80EGrhuB__dzERat0XF9g2VtQgr9PJbu3XOiZj5RZmh7AAuHIm4Bh-0Qc_lF5YKt_O8W2Fp5jujGbds9uJdbF9CUAr7t1dnZcAcQjbKBYNX4BAynRFdiuB--f_nZLgrnbyTyWzO75vRK5h6xBArLIARNPvkSjtQBMHlb1L07Qe7K0GarZRmB_eSN9383LcOLn6_dO--xi12jzDwusC-eOkHWEsqtFZESc6BfI7noOPqvhJ1phCnvWh6IeYI2w9QOYEUipUTI8np6LbgGY9Fs98rqVt5AXLIhWkWywlVmtVrBp0igcN_IoypGlUPQGe77Rw`,
  },
  {
    name: 'RFC 7515 A.3 (ES256)',
    alg: 'ES256',
    key: {
      kty: 'EC',
      crv: 'P-256',
      x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU',
      y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0',
    },
    jws: `eyJhbGciOiJFUzI1NiJ9.${RFC7515_PAYLOAD}.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q`,
  },
  {
    name: 'RFC 8037 A.4 (Ed25519)',
    alg: 'EdDSA',
    key: { kty: 'OKP', crv: 'Ed25519', x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo' },
    jws: 'eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc.hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg',
  },
];

function flipLastBit(text: string): string {
  const bytes = Buffer.from(text, 'base64url');
  bytes[bytes.length - 1]! ^= 1;
  return bytes.toString('base64url');
}

describe('public test vectors', () => {
  async function importVector(backend: SignatureBackend, vector: Vector) {
    const spec = ALGORITHMS.get(vector.alg)!;
    const key =
      vector.key instanceof Uint8Array
        ? await backend.importSecret(vector.key, spec)
        : await backend.importJwk(vector.key, spec);
    if (key === null) throw new Error(`${backend.name} refused the ${vector.name} key`);
    return key;
  }

  for (const vector of VECTORS) {
    it(`${vector.name}: both backends verify it and refuse it with one bit changed`, async () => {
      const [h, p, s] = vector.jws.split('.') as [string, string, string];
      for (const backend of BACKENDS) {
        const key = await importVector(backend, vector);
        const signature = new Uint8Array(Buffer.from(s, 'base64url'));
        const flipped = new Uint8Array(Buffer.from(flipLastBit(s), 'base64url'));
        const verify = (sig: Uint8Array, input: string) =>
          Promise.resolve(key.verify(sig, encoder.encode(input)));
        expect(await verify(signature, `${h}.${p}`), backend.name).toBe(true);
        expect(await verify(flipped, `${h}.${p}`), backend.name).toBe(false);
        expect(await verify(signature, `${h}.${p.slice(0, -1)}A`), backend.name).toBe(false);
      }
    });
  }

  it('reach the same verdict through the verifier on both backends', async () => {
    // The RFC 7515 claims: iss joe, exp 1300819380, no sub. A verified signature therefore ends
    // at the claims check (token_invalid_claims), a broken one at token_invalid_signature.
    const clock = new Clock();
    clock.ms = 1_300_819_000_000;
    for (const vector of VECTORS) {
      const keys: IssuerOptions['keys'] =
        vector.key instanceof Uint8Array
          ? { secret: vector.key, algorithm: vector.alg as 'HS256' }
          : { jwks: { keys: [vector.key] } };
      const both = pair(
        { issuer: 'joe', keys, audiences: null, algorithms: [vector.alg], types: null },
        clock,
      );
      const [h, p, s] = vector.jws.split('.') as [string, string, string];
      const jwt = vector.alg !== 'EdDSA';
      expect(await both(vector.jws), vector.name).toEqual(
        jwt
          ? ['token_invalid_claims', 'token_invalid_claims']
          : ['token_malformed', 'token_malformed'],
      );
      if (jwt) {
        expect(await both(`${h}.${p}.${flipLastBit(s)}`), vector.name).toEqual([
          'token_invalid_signature',
          'token_invalid_signature',
        ]);
      }
    }
  });
});

describe('hostile signatures: the same verdict on both backends', () => {
  const ASYMMETRIC: readonly Algorithm[] = [
    'RS256',
    'RS384',
    'RS512',
    'PS256',
    'PS384',
    'PS512',
    'ES256',
    'ES384',
    'ES512',
    'EdDSA',
  ];
  const keys = new Map<Algorithm, TestKey>();
  const others = new Map<Algorithm, TestKey>();

  beforeAll(async () => {
    for (const alg of ASYMMETRIC) {
      keys.set(alg, await makeKey(alg));
      // Same kid, another key: a valid signature by the wrong key.
      others.set(alg, await makeKey(alg));
    }
  });

  const digest = (alg: Algorithm) => (alg === 'EdDSA' ? null : `sha${alg.slice(2)}`);
  const privateOf = (key: TestKey) => KeyObject.from(key.privateKey as never);

  /** Variants of a valid token signed by `key`, each named by what it does. */
  async function variants(key: TestKey): Promise<Record<string, string>> {
    const alg = key.alg;
    const token = await mint(key);
    const [h, p, s] = token.split('.') as [string, string, string];
    const sig = Buffer.from(s, 'base64url');
    const input = Buffer.from(`${h}.${p}`);
    const withSig = (bytes: Uint8Array) => `${h}.${p}.${b64url(bytes)}`;
    const out: Record<string, string> = {
      valid: token,
      'last bit flipped': `${h}.${p}.${flipLastBit(s)}`,
      'first byte changed': withSig(Buffer.from([sig[0]! ^ 0x80, ...sig.subarray(1)])),
      truncated: withSig(sig.subarray(0, sig.length - 1)),
      'one byte longer': withSig(Buffer.concat([sig, Buffer.from([0])])),
      'all zero': withSig(new Uint8Array(sig.length)),
      'all 0xff': withSig(new Uint8Array(sig.length).fill(0xff)),
      'payload changed': `${h}.${json(claims({ sub: 'mallory' }))}.${s}`,
      'signed by another key': await mint(others.get(alg)!),
    };
    if (alg.startsWith('ES')) {
      const width = sig.length / 2;
      const order = ALGORITHMS.get(alg)!.order!;
      const r = sig.subarray(0, width);
      const sValue = sig.subarray(width);
      const n = BigInt(`0x${Buffer.from(order).toString('hex')}`);
      const toBytes = (value: bigint) =>
        Buffer.from(value.toString(16).padStart(width * 2, '0'), 'hex');
      const sInt = BigInt(`0x${sValue.toString('hex')}`);
      out['DER instead of r||s'] = withSig(
        nodeSign(digest(alg), input, { key: privateOf(key), dsaEncoding: 'der' }),
      );
      out['r = 0'] = withSig(Buffer.concat([new Uint8Array(width), sValue]));
      out['s = 0'] = withSig(Buffer.concat([r, new Uint8Array(width)]));
      out['r = n'] = withSig(Buffer.concat([Buffer.from(order), sValue]));
      out['s = n'] = withSig(Buffer.concat([r, Buffer.from(order)]));
      out['s + n'] = withSig(Buffer.concat([r, toBytes((sInt + n) % 2n ** BigInt(width * 8))]));
      out['r = n - 1'] = withSig(Buffer.concat([toBytes(n - 1n), sValue]));
      // ECDSA's own malleability: (r, n - s) is also valid; JWS does not forbid it, and the two
      // backends must still agree.
      out['high s (n - s)'] = withSig(Buffer.concat([r, toBytes(n - sInt)]));
    }
    if (alg.startsWith('RS')) {
      out['PSS signature under an RS alg'] = withSig(
        nodeSign(digest(alg), input, {
          key: privateOf(key),
          padding: constants.RSA_PKCS1_PSS_PADDING,
          saltLength: Number(alg.slice(2)) / 8,
        }),
      );
    }
    if (alg.startsWith('PS')) {
      const hashBytes = Number(alg.slice(2)) / 8;
      const pss = (saltLength: number) =>
        withSig(
          nodeSign(digest(alg), input, {
            key: privateOf(key),
            padding: constants.RSA_PKCS1_PSS_PADDING,
            saltLength,
          }),
        );
      out['PKCS#1 v1.5 signature under a PS alg'] = withSig(
        nodeSign(digest(alg), input, { key: privateOf(key) }),
      );
      out['PSS salt 0'] = pss(0);
      out['PSS salt one byte longer than the hash'] = pss(hashBytes + 1);
      out['PSS salt one byte shorter than the hash'] = pss(hashBytes - 1);
    }
    return out;
  }

  for (const alg of ASYMMETRIC) {
    it(`${alg}: every variant gets one verdict from both, and only the valid token passes`, async () => {
      const key = keys.get(alg)!;
      const both = pair({
        issuer: ISSUER,
        keys: { jwks: { keys: [key.jwk] } },
        audiences: [AUDIENCE],
        algorithms: [alg],
      });
      const verdicts: Record<string, string[]> = {};
      for (const [name, token] of Object.entries(await variants(key))) {
        verdicts[name] = await both(token);
      }
      for (const [name, [node, web]] of Object.entries(verdicts)) {
        expect(node, `${alg} ${name}: node:crypto vs WebCrypto`).toBe(web);
        const expected =
          name === 'valid' || name === 'high s (n - s)' ? 'ok' : 'token_invalid_signature';
        expect(node, `${alg} ${name}`).toBe(expected);
      }
    });
  }

  it('HS256/384/512: a changed, truncated or foreign MAC gets the same verdict from both', async () => {
    for (const alg of ['HS256', 'HS384', 'HS512'] as const) {
      const secret = new Uint8Array(64).fill(9);
      const hash = `SHA-${alg.slice(2)}`;
      const importSecret = (bytes: Uint8Array) =>
        crypto.subtle.importKey(
          'raw',
          bytes as Uint8Array<ArrayBuffer>,
          { name: 'HMAC', hash },
          false,
          ['sign'],
        );
      const header = JSON.stringify({ alg, typ: 'JWT' });
      const token = await signRaw(
        header,
        JSON.stringify(claims()),
        await importSecret(secret),
        alg,
      );
      const foreign = await signRaw(
        header,
        JSON.stringify(claims()),
        await importSecret(new Uint8Array(64).fill(8)),
        alg,
      );
      const [h, p, s] = token.split('.') as [string, string, string];
      const both = pair({
        issuer: ISSUER,
        keys: { secret, algorithm: alg },
        audiences: [AUDIENCE],
        algorithms: [alg],
      });
      const sig = Buffer.from(s, 'base64url');
      expect(await both(token)).toEqual(['ok', 'ok']);
      for (const bad of [
        `${h}.${p}.${flipLastBit(s)}`,
        `${h}.${p}.${b64url(sig.subarray(1))}`,
        `${h}.${p}.${b64url(new Uint8Array(sig.length))}`,
        foreign,
      ]) {
        expect(await both(bad), alg).toEqual([
          'token_invalid_signature',
          'token_invalid_signature',
        ]);
      }
    }
  });
});

describe('hostile keys: the same refusal on both backends', () => {
  it('refuses an EC JWK whose point is not on its curve', async () => {
    const key = await makeKey('ES256');
    const y = Buffer.from(key.jwk.y!, 'base64url');
    y[y.length - 1]! ^= 1;
    const offCurve = { ...key.jwk, y: y.toString('base64url') };
    const both = pair({
      issuer: ISSUER,
      keys: { jwks: { keys: [offCurve] } },
      audiences: [AUDIENCE],
      algorithms: ['ES256'],
    });
    expect(await both(await mint(key))).toEqual(['keys_unavailable', 'keys_unavailable']);
  });

  it('refuses a PEM on another curve than its algorithm, or of another key type', async () => {
    const p384 = await makeKey('ES384');
    const ed = await makeKey('EdDSA');
    const rsa = await makeKey('RS256');
    const es256 = await makeKey('ES256');
    for (const pem of [p384.pem, ed.pem, rsa.pem]) {
      const both = pair({
        issuer: ISSUER,
        keys: { publicKeyPem: pem, algorithm: 'ES256' },
        audiences: [AUDIENCE],
        algorithms: ['ES256'],
      });
      expect(await both(await mint(es256))).toEqual(['keys_unavailable', 'keys_unavailable']);
    }
  });

  it('refuses an RSA-PSS (id-RSASSA-PSS) PEM for PS and RS algorithms alike', async () => {
    // WebCrypto refuses this key type outright; node:crypto would verify PSS with it.
    const { publicKey, privateKey } = generateKeyPairSync('rsa-pss', { modulusLength: 2048 });
    const pem = publicKey.export({ format: 'pem', type: 'spki' }).toString();
    for (const alg of ['PS256', 'RS256'] as const) {
      const header = b64url(JSON.stringify({ alg, typ: 'JWT' }));
      const input = `${header}.${json(claims())}`;
      const signature = nodeSign('sha256', Buffer.from(input), {
        key: privateKey,
        padding: constants.RSA_PKCS1_PSS_PADDING,
        saltLength: 32,
      });
      const both = pair({
        issuer: ISSUER,
        keys: { publicKeyPem: pem, algorithm: alg },
        audiences: [AUDIENCE],
        algorithms: [alg],
      });
      expect(await both(`${input}.${b64url(signature)}`), alg).toEqual([
        'keys_unavailable',
        'keys_unavailable',
      ]);
    }
  });
});

describe('the shared decision table on both backends', () => {
  const read = (path: string) => readFileSync(new URL(`../../../${path}`, import.meta.url), 'utf8');
  const { cases } = JSON.parse(read('test/cases/decisions.json')) as { cases: DecisionCase[] };
  const SECRET = 'demo-secret-for-tests-0123456789abcdef';
  let keys: string;
  let gatehouses: Gatehouse[];
  beforeAll(async () => {
    // Delegation cases verify Gatehouse's own tokens: the same backends, the generated keys.
    keys = await demoDelegationKeys();
    const policy = compilePolicy(JSON.parse(read('demo/policy.json')), {
      env: { GATEHOUSE_DEV_SECRET: SECRET, GATEHOUSE_DELEGATION_KEYS: keys },
    });
    gatehouses = BACKENDS.map(
      (backend) =>
        new Gatehouse({
          policy,
          store: createFileStore(read('demo/permissions.json')),
          verifier: createVerifierWith({ ...policy.verifier, tokenCache: false }, backend),
        }),
    );
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s', async (_name, c) => {
    const token = await demoToken(c, SECRET, keys);
    const request = {
      method: c.method,
      path: c.path,
      authorization: token === undefined ? undefined : `Bearer ${token}`,
      ip: c.ip ?? '203.0.113.9',
    };
    const [node, web] = await Promise.all(gatehouses.map((g) => g.decide(request)));
    const shape = (d: { allow: boolean; status: number; reason: string }) => ({
      allow: d.allow,
      status: d.status,
      reason: d.reason,
    });
    expect(shape(node!)).toEqual(shape(web!));
    expect(shape(node!)).toEqual(c.expect);
  });
});
