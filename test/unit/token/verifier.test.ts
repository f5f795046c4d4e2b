import { KeyObject, sign as nodeSign } from 'node:crypto';
import { type CryptoKey, exportJWK, exportSPKI, generateKeyPair } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, TokenError } from '../../../src/errors.ts';
import type { Algorithm, IssuerOptions } from '../../../src/token/index.ts';
import { createVerifierWith } from '../../../src/token/verifier.ts';
import {
  AUDIENCE,
  b64url,
  Clock,
  claims,
  countingBackend,
  createVerifier,
  eachBackend,
  expectCode,
  ISSUER,
  issuerWith,
  json,
  makeKey,
  mint,
  NOW_S,
  options,
  signRaw,
  type TestKey,
} from './helpers.ts';

let es256: TestKey;
let es384: TestKey;
let es512: TestKey;
let rs256: TestKey;
let ps256: TestKey;
let ed: TestKey;
let attacker: TestKey;

beforeAll(async () => {
  [es256, es384, es512, rs256, ps256, ed, attacker] = await Promise.all([
    makeKey('ES256'),
    makeKey('ES384'),
    makeKey('ES512'),
    makeKey('RS256'),
    makeKey('PS256'),
    makeKey('EdDSA'),
    makeKey('ES256', 'attacker'),
  ]);
});

function verifierFor(issuer: IssuerOptions, clock = new Clock(), extra = {}) {
  return createVerifier(options([issuer], clock, { tokenCache: false, ...extra }));
}

async function hmacKey(secret: Uint8Array, hash = 'SHA-256'): Promise<CryptoKey> {
  return crypto.subtle.importKey(
    'raw',
    secret as Uint8Array<ArrayBuffer>,
    { name: 'HMAC', hash },
    false,
    ['sign'],
  );
}

function parts(token: string): [string, string, string] {
  const [h, p, s] = token.split('.');
  return [h!, p!, s!];
}

function withSignature(token: string, signature: Uint8Array): string {
  const [h, p] = parts(token);
  return `${h}.${p}.${b64url(signature)}`;
}

function signatureOf(token: string): Uint8Array {
  return new Uint8Array(Buffer.from(parts(token)[2], 'base64url'));
}

eachBackend((backend) => {
  describe('supported algorithms', () => {
    for (const alg of [
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
    ] as const) {
      it(`verifies a ${alg} token from a JWKS key without alg`, async () => {
        const key = await makeKey(alg);
        const verifier = verifierFor(issuerWith(key));
        const { principal, cache } = await verifier.verify(await mint(key));
        expect(principal.subject).toBe('user-1');
        expect(cache).toBe('miss');
      });
    }

    for (const [alg, bytes] of [
      ['HS256', 32],
      ['HS384', 48],
      ['HS512', 64],
    ] as const) {
      it(`verifies a ${alg} token from a configured secret`, async () => {
        const secret = new Uint8Array(bytes).fill(9);
        const verifier = verifierFor({
          issuer: ISSUER,
          keys: { secret, algorithm: alg },
          audiences: [AUDIENCE],
          algorithms: [alg],
        });
        const token = await signRaw(
          JSON.stringify({ alg, typ: 'JWT' }),
          JSON.stringify(claims()),
          await hmacKey(secret, `SHA-${alg.slice(2)}`),
          alg,
        );
        expect((await verifier.verify(token)).principal.subject).toBe('user-1');
      });
    }

    it('accepts the header alg Ed25519 only when the allowlist names Ed25519 exactly', async () => {
      const named = await mint(ed, {}, { alg: 'Ed25519' });
      await expectCode(verifierFor(issuerWith(ed)).verify(named), 'token_algorithm_mismatch');
      const both = verifierFor(issuerWith(ed, { algorithms: ['EdDSA', 'Ed25519'] }));
      await expect(both.verify(named)).resolves.toBeDefined();
      await expect(both.verify(await mint(ed))).resolves.toBeDefined();
      const only = verifierFor(issuerWith(ed, { algorithms: ['Ed25519'] }));
      await expect(only.verify(named)).resolves.toBeDefined();
      await expectCode(only.verify(await mint(ed)), 'token_algorithm_mismatch');
      const pem = verifierFor(
        issuerWith(ed, {
          algorithms: ['Ed25519'],
          keys: { publicKeyPem: ed.pem, algorithm: 'Ed25519' },
        }),
      );
      await expect(pem.verify(named)).resolves.toBeDefined();
    });

    it('binds a JWK whose alg is Ed25519 to EdDSA', async () => {
      const verifier = verifierFor(
        issuerWith(ed, { keys: { jwks: { keys: [{ ...ed.jwk, alg: 'Ed25519' }] } } }),
      );
      await expect(verifier.verify(await mint(ed))).resolves.toBeDefined();
    });

    it('verifies with a PEM public key bound to its algorithm', async () => {
      const verifier = verifierFor(
        issuerWith(rs256, { keys: { publicKeyPem: rs256.pem, algorithm: 'RS256' } }),
      );
      await expect(verifier.verify(await mint(rs256))).resolves.toBeDefined();
    });
  });

  describe('algorithm allowlist and key binding', () => {
    it('rejects alg none in any letter case', async () => {
      const verifier = verifierFor(issuerWith(es256));
      for (const alg of ['none', 'None', 'NONE', 'nOnE']) {
        const unsigned = `${json({ alg, typ: 'JWT' })}.${json(claims())}`;
        await expectCode(verifier.verify(`${unsigned}.`), 'token_malformed');
        await expectCode(
          verifier.verify(`${unsigned}.${b64url('sig')}`),
          'token_algorithm_mismatch',
        );
      }
    });

    it('compares algorithms exactly (es256 is not ES256)', async () => {
      const verifier = verifierFor(issuerWith(es256));
      await expectCode(
        verifier.verify(await mint(es256, {}, { alg: 'es256' })),
        'token_algorithm_mismatch',
      );
    });

    it('rejects a validly signed token whose alg is outside the issuer allowlist', async () => {
      const verifier = verifierFor(issuerWith(es256));
      await expectCode(verifier.verify(await mint(ps256)), 'token_algorithm_mismatch');
      await expectCode(
        verifier.verify(await mint(ps256, {}, { kid: es256.kid })),
        'token_algorithm_mismatch',
      );
    });

    it('rejects HS256 signed with the RSA public key PEM as the secret (key confusion)', async () => {
      const verifier = verifierFor(
        issuerWith(rs256, {
          keys: { publicKeyPem: rs256.pem, algorithm: 'RS256' },
          algorithms: ['RS256', 'HS256'],
        }),
      );
      const forged = await signRaw(
        JSON.stringify({ alg: 'HS256', typ: 'JWT' }),
        JSON.stringify(claims()),
        await hmacKey(new TextEncoder().encode(rs256.pem)),
        'HS256',
      );
      await expectCode(verifier.verify(forged), 'token_algorithm_mismatch');
    });

    it('rejects HS256 signed with the RSA public JWK bytes as the secret (key confusion)', async () => {
      const verifier = verifierFor(issuerWith(rs256));
      for (const secret of [JSON.stringify(rs256.jwk), rs256.jwk.n!]) {
        const forged = await signRaw(
          JSON.stringify({ alg: 'HS256', kid: rs256.kid }),
          JSON.stringify(claims()),
          await hmacKey(new TextEncoder().encode(secret)),
          'HS256',
        );
        await expectCode(verifier.verify(forged), 'token_algorithm_mismatch');
      }
    });

    it('binds a JWK without alg to the first configured algorithm that fits, not the header', async () => {
      const verifier = verifierFor(issuerWith(rs256, { algorithms: ['PS256', 'RS256'] }));
      // Same RSA key, valid RS256 signature; the key is bound to PS256 by configuration.
      await expectCode(verifier.verify(await mint(rs256)), 'token_algorithm_mismatch');
    });

    it('binds a JWK with alg to that alg', async () => {
      const verifier = verifierFor(
        issuerWith(rs256, {
          keys: { jwks: { keys: [{ ...rs256.jwk, alg: 'RS256' }] } },
          algorithms: ['PS256', 'RS256'],
        }),
      );
      await expect(verifier.verify(await mint(rs256))).resolves.toBeDefined();
      const pss = await signRaw(
        JSON.stringify({ alg: 'PS256', kid: rs256.kid }),
        JSON.stringify(claims()),
        (await generateKeyPair('PS256')).privateKey,
        'PS256',
      );
      await expectCode(verifier.verify(pss), 'token_algorithm_mismatch');
    });

    it('rejects a token whose alg differs from the PEM key algorithm', async () => {
      const verifier = verifierFor(
        issuerWith(es256, {
          keys: { publicKeyPem: es256.pem, algorithm: 'ES256' },
          algorithms: ['ES256', 'ES384'],
        }),
      );
      await expectCode(
        verifier.verify(await mint(es384, {}, { kid: undefined })),
        'token_algorithm_mismatch',
      );
    });
  });

  describe('signature checks', () => {
    it('rejects a stripped signature', async () => {
      const verifier = verifierFor(issuerWith(es256));
      const [h, p] = parts(await mint(es256));
      await expectCode(verifier.verify(`${h}.${p}.`), 'token_malformed');
      await expectCode(verifier.verify(`${h}.${p}`), 'token_malformed');
    });

    it('rejects a truncated or extended signature before crypto', async () => {
      const verifier = verifierFor(issuerWith(es256));
      const token = await mint(es256);
      const sig = signatureOf(token);
      await expectCode(
        verifier.verify(withSignature(token, sig.subarray(0, 63))),
        'token_invalid_signature',
      );
      await expectCode(
        verifier.verify(withSignature(token, sig.subarray(0, 1))),
        'token_invalid_signature',
      );
      const longer = new Uint8Array(65);
      longer.set(sig);
      await expectCode(verifier.verify(withSignature(token, longer)), 'token_invalid_signature');
    });

    it('rejects an RSA signature whose length differs from the modulus', async () => {
      const verifier = verifierFor(issuerWith(rs256));
      const token = await mint(rs256);
      const sig = signatureOf(token);
      expect(sig.length).toBe(256);
      await expectCode(
        verifier.verify(withSignature(token, sig.subarray(1))),
        'token_invalid_signature',
      );
    });

    it('rejects a DER-encoded ECDSA signature', async () => {
      const verifier = verifierFor(issuerWith(es256));
      const token = await mint(es256);
      const [h, p] = parts(token);
      const der = nodeSign('sha256', Buffer.from(`${h}.${p}`), {
        key: KeyObject.from(es256.privateKey as never),
        dsaEncoding: 'der',
      });
      expect(der[0]).toBe(0x30);
      await expectCode(
        verifier.verify(withSignature(token, new Uint8Array(der))),
        'token_invalid_signature',
      );
    });

    it('never reaches the signature backend for a badly shaped signature', async () => {
      const counted = countingBackend(backend);
      const on = (issuer: IssuerOptions) =>
        createVerifierWith(options([issuer], new Clock(), { tokenCache: false }), counted);
      const verifier = on(issuerWith(es256));
      const token = await mint(es256);
      const sig = signatureOf(token);
      const [h, p] = parts(token);
      const der = nodeSign('sha256', Buffer.from(`${h}.${p}`), {
        key: KeyObject.from(es256.privateKey as never),
        dsaEncoding: 'der',
      });
      const n = Buffer.from(
        'ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551',
        'hex',
      );
      const join = (r: Uint8Array, s: Uint8Array) => new Uint8Array([...r, ...s]);
      const r = sig.subarray(0, 32);
      const s = sig.subarray(32);
      const bad = [
        sig.subarray(0, 63),
        new Uint8Array([...sig, 0]),
        new Uint8Array(der),
        join(new Uint8Array(32), s),
        join(r, new Uint8Array(32)),
        join(r, n),
        join(n, s),
        join(r, new Uint8Array(32).fill(0xff)),
      ];
      const rsaToken = await mint(rs256);
      const rsaVerifier = on(issuerWith(rs256));
      for (const signature of bad) {
        await expectCode(
          verifier.verify(withSignature(token, signature)),
          'token_invalid_signature',
        );
      }
      await expectCode(
        rsaVerifier.verify(withSignature(rsaToken, signatureOf(rsaToken).subarray(1))),
        'token_invalid_signature',
      );
      expect(counted.verifies).toBe(0);
      await verifier.verify(token);
      expect(counted.verifies).toBe(1);
    });

    it('rejects a PS256 signature with its leading zero byte stripped (WebCrypto alone accepts it)', async () => {
      const verifier = verifierFor(issuerWith(ps256));
      // PSS signatures are randomised: sign until one starts with 0x00 (1 in 256).
      let token = await mint(ps256);
      for (let i = 0; i < 5000 && signatureOf(token)[0] !== 0; i++) {
        token = await mint(ps256, { jti: `try-${i}` });
      }
      const sig = signatureOf(token);
      expect(sig[0]).toBe(0);
      expect(sig).toHaveLength(256);
      await expect(verifier.verify(token)).resolves.toBeDefined();
      const stripped = sig.subarray(1);
      const [h, p] = parts(token);
      // The reason the length check exists: WebCrypto (Node 20) verifies the 255-byte form.
      const libraryAccepts = await crypto.subtle
        .verify(
          { name: 'RSA-PSS', saltLength: 32 },
          ps256.publicKey,
          stripped as Uint8Array<ArrayBuffer>,
          new TextEncoder().encode(`${h}.${p}`),
        )
        .catch(() => false);
      expect(libraryAccepts).toBe(true);
      await expectCode(verifier.verify(withSignature(token, stripped)), 'token_invalid_signature');
    });

    describe('ECDSA r and s range', () => {
      const orders: Record<string, bigint> = {
        ES256: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
        ES384:
          0xffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973n,
        ES512:
          0x01fffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffa51868783bf2f966b7fcc0148f709a5d03bb5c9b8899c47aebb6fb71e91386409n,
      };
      const keyFor = (alg: string) => ({ ES256: es256, ES384: es384, ES512: es512 })[alg]!;
      const toBytes = (value: bigint, width: number) => {
        const out = new Uint8Array(width);
        for (let i = width - 1; i >= 0; i--) {
          out[i] = Number(value & 0xffn);
          value >>= 8n;
        }
        return out;
      };
      const toBig = (bytes: Uint8Array) => BigInt(`0x${Buffer.from(bytes).toString('hex')}`);

      for (const alg of ['ES256', 'ES384', 'ES512']) {
        it(`rejects r = 0, s = 0, s = n, r = n and s > n for ${alg}`, async () => {
          const key = keyFor(alg);
          const verifier = verifierFor(issuerWith(key));
          const token = await mint(key);
          const sig = signatureOf(token);
          const w = sig.length / 2;
          const r = sig.subarray(0, w);
          const s = sig.subarray(w);
          const n = toBytes(orders[alg]!, w);
          const variants = [
            [new Uint8Array(w), s],
            [r, new Uint8Array(w)],
            [r, n],
            [n, s],
            [r, toBytes(orders[alg]! + 1n, w)],
            [r, new Uint8Array(w).fill(0xff)],
          ];
          for (const [a, b] of variants) {
            const bad = new Uint8Array(2 * w);
            bad.set(a!, 0);
            bad.set(b!, w);
            await expectCode(verifier.verify(withSignature(token, bad)), 'token_invalid_signature');
          }
        });

        it(`uses the right group order for ${alg} (the twin signature n - s still verifies)`, async () => {
          const key = keyFor(alg);
          const verifier = verifierFor(issuerWith(key));
          const token = await mint(key);
          const sig = signatureOf(token);
          const w = sig.length / 2;
          const twin = new Uint8Array(sig);
          twin.set(toBytes(orders[alg]! - toBig(sig.subarray(w)), w), w);
          await expect(verifier.verify(withSignature(token, twin))).resolves.toBeDefined();
        });
      }
    });

    it('rejects a tampered payload', async () => {
      const verifier = verifierFor(issuerWith(es256));
      const [h, , s] = parts(await mint(es256));
      await expectCode(
        verifier.verify(`${h}.${json(claims({ sub: 'admin' }))}.${s}`),
        'token_invalid_signature',
      );
    });

    it('rejects a signature from another key with the same kid', async () => {
      const verifier = verifierFor(issuerWith(es256));
      await expectCode(
        verifier.verify(await mint({ ...attacker, kid: es256.kid })),
        'token_invalid_signature',
      );
    });
  });

  describe('headers naming keys', () => {
    it('rejects a token whose embedded jwk header carries the attacker key', async () => {
      const verifier = verifierFor(issuerWith(es256));
      const jwk = await exportJWK(attacker.publicKey);
      await expectCode(
        verifier.verify(await mint(attacker, {}, { kid: undefined, jwk })),
        'token_invalid_signature',
      );
      await expectCode(verifier.verify(await mint(attacker, {}, { jwk })), 'token_unknown_key');
    });

    it('ignores jku, x5u, jwk and x5c: a genuine token carrying them verifies with configured keys', async () => {
      const verifier = verifierFor(issuerWith(es256));
      const token = await mint(
        es256,
        {},
        {
          jku: 'https://attacker.example/jwks.json',
          x5u: 'https://attacker.example/cert.pem',
          jwk: await exportJWK(attacker.publicKey),
          x5c: ['MIIB'],
        },
      );
      await expect(verifier.verify(token)).resolves.toBeDefined();
    });

    it('uses kid only as an exact lookup key', async () => {
      const verifier = verifierFor(issuerWith(es256));
      for (const kid of [
        '../../etc/passwd',
        `${es256.kid}/..`,
        es256.kid.toUpperCase(),
        `${es256.kid}=`,
        `${es256.kid}#`,
        `${es256.kid}:`,
        "k'--",
      ]) {
        await expectCode(verifier.verify(await mint(es256, {}, { kid })), 'token_unknown_key');
      }
      for (const kid of ["k' OR 1=1;--", 'k'.repeat(257), `${es256.kid}\n`, `${es256.kid}\u00a0`]) {
        await expectCode(verifier.verify(await mint(es256, {}, { kid })), 'token_malformed');
      }
    });

    it("verifies kids real providers issue: RFC 7520's example, URNs and DID URLs with : and #", async () => {
      for (const kid of [
        'bilbo.baggins@hobbiton.example',
        'urn:example:key:2024-01',
        'did:web:issuer.example#key-1',
        'k'.repeat(256),
      ]) {
        const key = { ...es256, kid, jwk: { ...es256.jwk, kid } };
        await expect(verifierFor(issuerWith(key)).verify(await mint(key))).resolves.toBeDefined();
        const pem = verifierFor(
          issuerWith(key, { keys: { publicKeyPem: es256.pem, algorithm: 'ES256', kid } }),
        );
        await expect(pem.verify(await mint(key))).resolves.toBeDefined();
        // Exact: the configured kid with a different letter case is another key.
        await expectCode(
          pem.verify(await mint(key, {}, { kid: kid.toUpperCase() })),
          'token_unknown_key',
        );
      }
    });

    it('refuses a configured kid with whitespace, control or non-ASCII characters, or over 256 long', () => {
      for (const kid of ['k 1', 'k\t1', 'k\u00001', 'clé', 'k'.repeat(257), '']) {
        for (const keys of [
          { publicKeyPem: es256.pem, algorithm: 'ES256' as const, kid },
          { jwks: { keys: [{ ...es256.jwk, kid }] } },
        ]) {
          let error: unknown;
          try {
            verifierFor(issuerWith(es256, { keys }));
          } catch (e) {
            error = e;
          }
          expect(error).toBeInstanceOf(ConfigError);
          expect((error as ConfigError).field).toMatch(
            /^issuers\[0\]\.keys\.(kid|jwks\.keys\[0\])$/,
          );
        }
      }
    });

    it('rejects crit, b64:false, cty JWT and a 5-part JWE through the verifier', async () => {
      const verifier = verifierFor(issuerWith(es256));
      await expectCode(
        verifier.verify(await mint(es256, {}, { crit: ['exp'], exp: 1 })),
        'token_unsupported',
      );
      await expectCode(
        verifier.verify(await mint(es256, {}, { b64: false, crit: ['b64'] })),
        'token_unsupported',
      );
      await expectCode(verifier.verify(await mint(es256, {}, { cty: 'JWT' })), 'token_unsupported');
      const jwe = `${json({ alg: 'RSA-OAEP', enc: 'A256GCM' })}.${b64url('k')}.${b64url('iv')}.${b64url('c')}.${b64url('t')}`;
      await expectCode(verifier.verify(jwe), 'token_malformed');
    });

    it('rejects duplicate member names in a validly signed token', async () => {
      const verifier = verifierFor(issuerWith(es256));
      const payload = JSON.stringify(claims()).replace('{', '{"sub":"admin",');
      const token = await signRaw(
        JSON.stringify({ alg: 'ES256', kid: es256.kid }),
        payload,
        es256.privateKey,
        'ES256',
      );
      await expectCode(verifier.verify(token), 'token_malformed');
    });
  });

  describe('typ', () => {
    it('accepts JWT and at+jwt in any case, with or without application/', async () => {
      const verifier = verifierFor(issuerWith(es256));
      for (const typ of [
        'JWT',
        'jwt',
        'at+jwt',
        'AT+JWT',
        'application/at+jwt',
        'application/jwt',
      ]) {
        await expect(verifier.verify(await mint(es256, {}, { typ }))).resolves.toBeDefined();
      }
    });

    it('rejects an unexpected typ', async () => {
      const verifier = verifierFor(issuerWith(es256));
      for (const typ of ['dpop+jwt', 'JOSE', 'secevent+jwt', 'application/x/at+jwt', 7]) {
        await expectCode(verifier.verify(await mint(es256, {}, { typ })), 'token_invalid_type');
      }
    });

    it('accepts a missing typ unless requireType is set', async () => {
      const token = await mint(es256, {}, { typ: undefined });
      await expect(verifierFor(issuerWith(es256)).verify(token)).resolves.toBeDefined();
      await expectCode(
        verifierFor(issuerWith(es256, { requireType: true })).verify(token),
        'token_invalid_type',
      );
    });

    it('refuses a missing typ when the allowlist has no JWT (RFC 9068 at+jwt), unless requireType: false', async () => {
      const token = await mint(es256, {}, { typ: undefined });
      for (const types of [
        ['at+jwt'],
        ['application/at+jwt'],
        ['dpop+jwt', 'at+jwt'],
        ['AT+JWT'],
      ]) {
        await expectCode(
          verifierFor(issuerWith(es256, { types })).verify(token),
          'token_invalid_type',
        );
        await expect(
          verifierFor(issuerWith(es256, { types, requireType: false })).verify(token),
        ).resolves.toBeDefined();
        await expect(
          verifierFor(issuerWith(es256, { types })).verify(
            await mint(es256, {}, { typ: 'at+jwt' }),
          ),
        ).resolves.toBeDefined();
      }
      // A missing typ counts as JWT: accepted wherever JWT is, in any spelling, or with no list.
      for (const types of [['JWT'], ['at+jwt', 'jwt'], ['application/JWT'], null]) {
        await expect(
          verifierFor(issuerWith(es256, { types })).verify(token),
        ).resolves.toBeDefined();
      }
    });

    it('skips the typ check with types: null and honours a custom list', async () => {
      const token = await mint(es256, {}, { typ: 'dpop+jwt' });
      await expect(
        verifierFor(issuerWith(es256, { types: null })).verify(token),
      ).resolves.toBeDefined();
      await expect(
        verifierFor(issuerWith(es256, { types: ['application/dpop+jwt'] })).verify(token),
      ).resolves.toBeDefined();
      await expectCode(
        verifierFor(issuerWith(es256, { types: ['application/dpop+jwt'] })).verify(
          await mint(es256),
        ),
        'token_invalid_type',
      );
    });
  });

  describe('issuer and audience', () => {
    it('rejects an issuer outside the allowlist, compared exactly', async () => {
      const verifier = verifierFor(issuerWith(es256));
      for (const iss of [
        'https://evil.example.com/',
        ISSUER.slice(0, -1),
        ISSUER.toUpperCase(),
        ` ${ISSUER}`,
      ]) {
        await expectCode(verifier.verify(await mint(es256, { iss })), 'token_unknown_issuer');
      }
      await expectCode(
        verifier.verify(await mint(es256, { iss: undefined })),
        'token_unknown_issuer',
      );
      await expectCode(
        verifier.verify(await mint(es256, { iss: [ISSUER] })),
        'token_unknown_issuer',
      );
    });

    it('verifies each issuer only with its own keys', async () => {
      const other = 'https://other.example.com/';
      const verifier = createVerifier(
        options([issuerWith(es256), issuerWith(attacker, { issuer: other })], new Clock()),
      );
      await expect(verifier.verify(await mint(attacker, { iss: other }))).resolves.toBeDefined();
      await expectCode(
        verifier.verify(await mint(attacker, {}, { kid: es256.kid })),
        'token_invalid_signature',
      );
      await expectCode(verifier.verify(await mint(attacker)), 'token_unknown_key');
    });

    it('rejects a wrong or missing audience', async () => {
      const verifier = verifierFor(issuerWith(es256));
      await expectCode(
        verifier.verify(await mint(es256, { aud: 'api://other' })),
        'token_invalid_audience',
      );
      await expectCode(
        verifier.verify(await mint(es256, { aud: undefined })),
        'token_invalid_audience',
      );
      await expectCode(verifier.verify(await mint(es256, { aud: [] })), 'token_invalid_audience');
      await expectCode(verifier.verify(await mint(es256, { aud: 42 })), 'token_invalid_audience');
    });

    it('rejects an audience array with a non-string element, even one that names us', async () => {
      const verifier = verifierFor(issuerWith(es256));
      for (const aud of [
        [AUDIENCE, 42],
        [AUDIENCE, null],
        [AUDIENCE, {}],
        [AUDIENCE, [AUDIENCE]],
        [42, AUDIENCE],
      ]) {
        await expectCode(verifier.verify(await mint(es256, { aud })), 'token_invalid_audience');
      }
    });

    it('accepts an audience array that contains one of ours', async () => {
      const verifier = verifierFor(issuerWith(es256));
      await expect(
        verifier.verify(await mint(es256, { aud: ['x', AUDIENCE] })),
      ).resolves.toBeDefined();
    });

    it('skips the audience check only with audiences: null', async () => {
      const verifier = verifierFor(issuerWith(es256, { audiences: null }));
      await expect(verifier.verify(await mint(es256, { aud: undefined }))).resolves.toBeDefined();
    });
  });

  describe('time claims', () => {
    it('rejects a missing or non-numeric exp', async () => {
      const verifier = verifierFor(issuerWith(es256));
      await expectCode(
        verifier.verify(await mint(es256, { exp: undefined })),
        'token_invalid_claims',
      );
      await expectCode(
        verifier.verify(await mint(es256, { exp: String(NOW_S + 60) })),
        'token_invalid_claims',
      );
    });

    it('rejects exp 1e400 (Infinity once parsed) and other non-finite NumericDates', async () => {
      const verifier = verifierFor(issuerWith(es256));
      const header = JSON.stringify({ alg: 'ES256', kid: es256.kid });
      for (const [name, value] of [
        ['exp', '1e400'],
        ['exp', '-1e400'],
        ['nbf', '-1e400'],
        ['iat', '-1e400'],
      ] as const) {
        const base = JSON.stringify({ ...claims(), [name]: 0 });
        const payload = base.replace(`"${name}":0`, `"${name}":${value}`);
        expect(payload).toContain(value);
        const token = await signRaw(header, payload, es256.privateKey, 'ES256');
        await expectCode(verifier.verify(token), 'token_invalid_claims');
      }
    });

    it('rejects an expired token', async () => {
      const verifier = verifierFor(issuerWith(es256));
      await expectCode(verifier.verify(await mint(es256, { exp: NOW_S - 3600 })), 'token_expired');
    });

    it('applies the leeway at the edge: 29 s past exp passes, 31 s fails', async () => {
      const verifier = verifierFor(issuerWith(es256));
      await expect(verifier.verify(await mint(es256, { exp: NOW_S - 29 }))).resolves.toBeDefined();
      await expectCode(verifier.verify(await mint(es256, { exp: NOW_S - 31 })), 'token_expired');
    });

    it('uses a configured leeway of zero', async () => {
      const verifier = verifierFor(issuerWith(es256), new Clock(), { leewaySeconds: 0 });
      await expectCode(verifier.verify(await mint(es256, { exp: NOW_S })), 'token_expired');
      await expect(verifier.verify(await mint(es256, { exp: NOW_S + 1 }))).resolves.toBeDefined();
    });

    it('rejects nbf in the future beyond the leeway', async () => {
      const verifier = verifierFor(issuerWith(es256));
      await expectCode(
        verifier.verify(await mint(es256, { nbf: NOW_S + 60 })),
        'token_not_yet_valid',
      );
      await expect(verifier.verify(await mint(es256, { nbf: NOW_S + 29 }))).resolves.toBeDefined();
      await expectCode(verifier.verify(await mint(es256, { nbf: 'soon' })), 'token_invalid_claims');
    });

    it('rejects iat in the future beyond the leeway', async () => {
      const verifier = verifierFor(issuerWith(es256));
      await expectCode(
        verifier.verify(await mint(es256, { iat: NOW_S + 60 })),
        'token_not_yet_valid',
      );
      await expect(verifier.verify(await mint(es256, { iat: NOW_S + 29 }))).resolves.toBeDefined();
    });

    it('enforces a maximum token age from iat, which it then requires', async () => {
      const verifier = verifierFor(issuerWith(es256, { maxAgeSeconds: 300 }));
      await expect(verifier.verify(await mint(es256, { iat: NOW_S - 300 }))).resolves.toBeDefined();
      await expectCode(verifier.verify(await mint(es256, { iat: NOW_S - 331 })), 'token_too_old');
      await expectCode(
        verifier.verify(await mint(es256, { iat: undefined })),
        'token_invalid_claims',
      );
    });
  });

  describe('principal', () => {
    it('carries issuer, kind, subject, expiry and issued-at', async () => {
      const verifier = verifierFor(issuerWith(es256));
      const { principal } = await verifier.verify(await mint(es256));
      expect(principal).toMatchObject({
        issuer: ISSUER,
        issuerKind: 'external',
        subject: 'user-1',
        expiresAt: NOW_S + 3600,
        issuedAt: NOW_S,
        scopes: [],
        actors: [],
      });
      expect(principal.tenant).toBeUndefined();
      expect(Object.isFrozen(principal)).toBe(true);
      expect(Object.isFrozen(principal.claims)).toBe(true);
    });

    it('marks a self issuer', async () => {
      const verifier = verifierFor(issuerWith(es256, { kind: 'self' }));
      expect((await verifier.verify(await mint(es256))).principal.issuerKind).toBe('self');
    });

    it('requires a non-empty string sub', async () => {
      const verifier = verifierFor(issuerWith(es256));
      for (const sub of [undefined, '', 42]) {
        await expectCode(verifier.verify(await mint(es256, { sub })), 'token_invalid_claims');
      }
    });

    it('takes the tenant from a configured claim and rejects a token without it', async () => {
      const verifier = verifierFor(issuerWith(es256, { tenant: { claim: 'tid' } }));
      expect((await verifier.verify(await mint(es256, { tid: 'acme' }))).principal.tenant).toBe(
        'acme',
      );
      await expectCode(verifier.verify(await mint(es256)), 'token_invalid_claims');
      await expectCode(verifier.verify(await mint(es256, { tid: 7 })), 'token_invalid_claims');
    });

    it('uses a fixed tenant', async () => {
      const verifier = verifierFor(issuerWith(es256, { tenant: { fixed: 'acme' } }));
      expect((await verifier.verify(await mint(es256, { tid: 'other' }))).principal.tenant).toBe(
        'acme',
      );
    });

    it('reads scopes from scope, or from scp as an array or a string', async () => {
      const verifier = verifierFor(issuerWith(es256));
      const scopes = async (extra: Record<string, unknown>) =>
        (await verifier.verify(await mint(es256, extra))).principal.scopes;
      expect(await scopes({ scope: 'read:a  write:b' })).toEqual(['read:a', 'write:b']);
      expect(await scopes({ scp: ['read:a', 'write:b'] })).toEqual(['read:a', 'write:b']);
      expect(await scopes({ scp: 'read:a write:b' })).toEqual(['read:a', 'write:b']);
      await expectCode(
        verifier.verify(await mint(es256, { scope: ['x'] })),
        'token_invalid_claims',
      );
      await expectCode(verifier.verify(await mint(es256, { scp: [1] })), 'token_invalid_claims');
    });

    it('keeps only registered claims and the configured names', async () => {
      const verifier = verifierFor(issuerWith(es256, { keepClaims: ['email', 'groups'] }));
      const { principal } = await verifier.verify(
        await mint(es256, {
          jti: 'j1',
          email: 'a@example.com',
          groups: ['g'],
          ssn: '123',
          nbf: NOW_S,
        }),
      );
      expect(principal.claims).toEqual({
        iss: ISSUER,
        sub: 'user-1',
        aud: AUDIENCE,
        exp: NOW_S + 3600,
        iat: NOW_S,
        nbf: NOW_S,
        jti: 'j1',
        email: 'a@example.com',
        groups: ['g'],
      });
      expect(principal.claims).not.toHaveProperty('ssn');
      expect(Object.isFrozen(principal.claims.groups)).toBe(true);
    });

    it('builds the act chain, current actor first', async () => {
      const verifier = verifierFor(issuerWith(es256));
      const act = { sub: 'svc-b', iss: 'https://b.example/', act: { sub: 'svc-a' } };
      expect((await verifier.verify(await mint(es256, { act }))).principal.actors).toEqual([
        { subject: 'svc-b', issuer: 'https://b.example/' },
        { subject: 'svc-a' },
      ]);
    });

    it('rejects a malformed act claim', async () => {
      const verifier = verifierFor(issuerWith(es256));
      let deep: Record<string, unknown> = { sub: 'x' };
      for (let i = 0; i < 20; i++) deep = { sub: `x${i}`, act: deep };
      for (const act of [
        'svc',
        { iss: 'x' },
        { sub: 1 },
        { sub: 'a', act: ['b'] },
        { sub: 'a', iss: 2 },
        deep,
      ]) {
        await expectCode(verifier.verify(await mint(es256, { act })), 'token_invalid_claims');
      }
    });
  });

  describe('errors', () => {
    it('never puts the token or its claims into the message', async () => {
      const verifier = verifierFor(issuerWith(es256));
      const token = await mint(es256, { sub: 'secret-subject', exp: NOW_S - 3600 });
      const error = (await verifier.verify(token).catch((e: unknown) => e)) as TokenError;
      expect(error).toBeInstanceOf(TokenError);
      expect(error.message).not.toContain(token.slice(0, 20));
      expect(error.message).not.toContain('secret-subject');
    });

    it('puts no token, claim or key material into the message on any failure path', async () => {
      const marker = 'SECRETMARKER';
      const issuer = issuerWith(es256, {
        tenant: { claim: 'tid' },
        maxAgeSeconds: 600,
        types: ['at+jwt', 'JWT'],
      });
      const verifier = verifierFor(issuer);
      const m = (c: Record<string, unknown>, h: Record<string, unknown> = {}) =>
        mint(es256, { sub: `sub-${marker}`, tid: `tid-${marker}`, jti: `jti-${marker}`, ...c }, h);
      const good = await m({});
      const [gh, gp] = parts(good);
      const tokens = [
        await m({ iss: `https://${marker}.example/` }),
        await m({}, { alg: 'HS256' }),
        await m({}, { alg: `none${marker}` }),
        await m({}, { typ: `typ-${marker}` }),
        await m({}, { kid: `kid-${marker}` }),
        `${gh}.${gp}.${b64url(`sig-${marker}`)}`,
        `${gh}.${json({ ...claims(), sub: `other-${marker}` })}.${parts(good)[2]}`,
        await m({ aud: `aud-${marker}` }),
        await m({ aud: [AUDIENCE, 7] }),
        await m({ nbf: NOW_S + 3600 }),
        await m({ iat: NOW_S + 3600 }),
        await m({ iat: NOW_S - 7200 }),
        await m({ exp: `exp-${marker}` }),
        await m({ sub: '' }),
        await m({ tid: undefined }),
        await m({ scope: 42 }),
        await m({ act: { sub: 7, note: marker } }),
        await m({}, { crit: [marker] }),
        await m({}, { cty: 'JWT', x: marker }),
        `${json({ alg: 'ES256', kid: marker, kid2: marker })}.${gp}.${parts(good)[2]}`.replace(
          'kid2',
          'kid',
        ),
        `${gh}.${gp}.${parts(good)[2]}=`,
        `${gh}.${gp}.${parts(good)[2]}`.repeat(40),
      ];
      const forbidden = [marker, es256.jwk.x!, es256.jwk.y!, ISSUER, AUDIENCE];
      for (const token of tokens) {
        const error = (await verifier.verify(token).then(
          () => undefined,
          (e: unknown) => e,
        )) as TokenError;
        expect(error, token).toBeInstanceOf(TokenError);
        expect(error.code).not.toBe('token_expired');
        for (const part of [...forbidden, ...token.split('.')]) {
          if (part.length >= 8) expect(error.message).not.toContain(part);
        }
      }
    });

    it('fails closed with keys_unavailable when a configured PEM cannot be imported', async () => {
      const bogus = `-----BEGIN PUBLIC KEY-----\n${b64url('not a key').replace(/[-_]/g, 'A')}\n-----END PUBLIC KEY-----`;
      const verifier = verifierFor(
        issuerWith(es256, { keys: { publicKeyPem: bogus, algorithm: 'ES256' } }),
      );
      await expectCode(verifier.verify(await mint(es256)), 'keys_unavailable');
      await expectCode(verifier.verify(await mint(es256)), 'keys_unavailable');
    });
  });

  describe('weak and shared keys', () => {
    let weak: TestKey;

    beforeAll(async () => {
      // jose refuses to generate it, WebCrypto does not.
      const { privateKey, publicKey } = (await crypto.subtle.generateKey(
        {
          name: 'RSASSA-PKCS1-v1_5',
          modulusLength: 1024,
          publicExponent: new Uint8Array([1, 0, 1]),
          hash: 'SHA-256',
        },
        true,
        ['sign', 'verify'],
      )) as { privateKey: CryptoKey; publicKey: CryptoKey };
      const jwk = { ...(await exportJWK(publicKey)), kid: 'rsa-1024' };
      weak = {
        alg: 'RS256',
        kid: 'rsa-1024',
        privateKey,
        publicKey,
        jwk,
        pem: await exportSPKI(publicKey),
      };
    });

    it('refuses to start with an RSA key shorter than 2048 bits in an inline key set or a PEM', async () => {
      expect((weak.publicKey.algorithm as unknown as { modulusLength: number }).modulusLength).toBe(
        1024,
      );
      const cases: [IssuerOptions['keys'], string][] = [
        [{ jwks: { keys: [rs256.jwk, weak.jwk] } }, 'issuers[0].keys.jwks.keys[1]'],
        [{ jwks: { keys: [weak.jwk] } }, 'issuers[0].keys.jwks.keys[0]'],
        [{ publicKeyPem: weak.pem, algorithm: 'RS256' }, 'issuers[0].keys.publicKeyPem'],
      ];
      for (const [keys, field] of cases) {
        let error: unknown;
        try {
          verifierFor(issuerWith(weak, { keys }));
        } catch (e) {
          error = e;
        }
        expect(error).toBeInstanceOf(ConfigError);
        expect((error as ConfigError).field).toBe(field);
      }
    });

    for (const kind of ['jwks', 'publicKeyPem', 'secret'] as const) {
      it(`imports a static ${kind} key per request (no shared promise) when shareInFlight is false`, async () => {
        const secret = new Uint8Array(32).fill(7);
        const issuer: IssuerOptions =
          kind === 'jwks'
            ? issuerWith(es256)
            : kind === 'publicKeyPem'
              ? issuerWith(es256, { keys: { publicKeyPem: es256.pem, algorithm: 'ES256' } })
              : {
                  ...issuerWith(es256),
                  keys: { secret, algorithm: 'HS256' },
                  algorithms: ['HS256'],
                };
        const token =
          kind === 'secret'
            ? await signRaw(
                JSON.stringify({ alg: 'HS256' }),
                JSON.stringify(claims()),
                await hmacKey(secret),
                'HS256',
              )
            : await mint(es256);
        const count = async (shareInFlight: boolean) => {
          const counted = countingBackend(backend);
          const verifier = createVerifierWith(
            options([issuer], new Clock(), { tokenCache: false, shareInFlight }),
            counted,
          );
          await Promise.all(Array.from({ length: 4 }, () => verifier.verify(token)));
          await verifier.verify(token);
          return counted.imports;
        };
        expect(await count(false)).toBe(4);
        expect(await count(true)).toBe(1);
      });
    }
  });

  describe('size', () => {
    it('rejects a token above the configured size before any parsing', async () => {
      const verifier = verifierFor(issuerWith(es256), new Clock(), { maxTokenBytes: 512 });
      await expect(verifier.verify(await mint(es256))).resolves.toBeDefined();
      await expectCode(
        verifier.verify(await mint(es256, { pad: 'x'.repeat(600) })),
        'token_too_large',
      );
      await expectCode(
        verifierFor(issuerWith(es256)).verify(await mint(es256, { pad: 'x'.repeat(9000) })),
        'token_too_large',
      );
    });
  });

  describe('configuration', () => {
    const base = (): IssuerOptions => ({
      issuer: ISSUER,
      keys: { jwks: { keys: [es256.jwk] } },
      audiences: [AUDIENCE],
      algorithms: ['ES256'],
    });

    function configError(build: () => unknown): ConfigError {
      try {
        build();
      } catch (e) {
        expect(e).toBeInstanceOf(ConfigError);
        return e as ConfigError;
      }
      throw new Error('expected a ConfigError');
    }

    it('refuses a weak HS secret (shorter than the hash output)', () => {
      for (const [alg, bytes] of [
        ['HS256', 31],
        ['HS384', 47],
        ['HS512', 63],
      ] as const) {
        const error = configError(() =>
          createVerifier({
            issuers: [
              { ...base(), keys: { secret: 'x'.repeat(bytes), algorithm: alg }, algorithms: [alg] },
            ],
          }),
        );
        expect(error.field).toBe('issuers[0].keys.secret');
      }
      expect(() =>
        createVerifier({
          issuers: [
            {
              ...base(),
              keys: { secret: 'x'.repeat(32), algorithm: 'HS256' },
              algorithms: ['HS256'],
            },
          ],
        }),
      ).not.toThrow();
    });

    it('refuses a leeway above 300 seconds', () => {
      expect(
        configError(() => createVerifier({ issuers: [base()], leewaySeconds: 301 })).field,
      ).toBe('leewaySeconds');
      expect(() => createVerifier({ issuers: [base()], leewaySeconds: 300 })).not.toThrow();
    });

    it('names the field of a missing audiences list (skipping needs an explicit null)', () => {
      const { audiences: _, ...noAudiences } = base();
      const error = configError(() =>
        createVerifier({ issuers: [base(), { ...noAudiences, issuer: 'x' } as IssuerOptions] }),
      );
      expect(error.field).toBe('issuers[1].audiences');
      expect(
        configError(() => createVerifier({ issuers: [{ ...base(), audiences: [] }] })).field,
      ).toBe('issuers[0].audiences');
    });

    it('refuses unknown algorithms, including none', () => {
      for (const alg of ['none', 'HS1', 'Ed448']) {
        const error = configError(() =>
          createVerifier({ issuers: [{ ...base(), algorithms: ['ES256', alg as Algorithm] }] }),
        );
        expect(error.field).toBe('issuers[0].algorithms[1]');
      }
      expect(
        configError(() => createVerifier({ issuers: [{ ...base(), algorithms: [] }] })).field,
      ).toBe('issuers[0].algorithms');
    });

    it('refuses HS algorithms with a key-set source', () => {
      const error = configError(() =>
        createVerifier({ issuers: [{ ...base(), algorithms: ['ES256', 'HS256'] }] }),
      );
      expect(error.field).toBe('issuers[0].algorithms[1]');
    });

    it('refuses other malformed options, naming the field', () => {
      const cases: [() => unknown, string][] = [
        [() => createVerifier({ issuers: [] }), 'issuers'],
        [() => createVerifier({ issuers: [base(), base()] }), 'issuers[1].issuer'],
        [
          () =>
            createVerifier({
              issuers: [{ ...base(), keys: { jwksUri: 'http://idp.example/jwks' } }],
            }),
          'issuers[0].keys.jwksUri',
        ],
        [
          () =>
            createVerifier({
              issuers: [{ ...base(), keys: { jwks: { keys: [{ kty: 'oct', k: 'AAAA' }] } } }],
            }),
          'issuers[0].keys.jwks.keys[0]',
        ],
        [
          () =>
            createVerifier({
              issuers: [{ ...base(), keys: { publicKeyPem: 'abc', algorithm: 'ES256' } }],
            }),
          'issuers[0].keys.publicKeyPem',
        ],
        [
          () =>
            createVerifier({
              issuers: [{ ...base(), keys: { publicKeyPem: es256.pem, algorithm: 'ES384' } }],
            }),
          'issuers[0].keys.algorithm',
        ],
        [
          () => createVerifier({ issuers: [base()], tokenCache: { maxEntries: 0 } }),
          'tokenCache.maxEntries',
        ],
        [() => createVerifier({ issuers: [base()], maxTokenBytes: 10 }), 'maxTokenBytes'],
        [
          () => createVerifier({ issuers: [{ ...base(), maxAgeSeconds: -1 }] }),
          'issuers[0].maxAgeSeconds',
        ],
        [
          () =>
            createVerifier({
              issuers: [{ ...base(), tenant: { claim: 'a', fixed: 'b' } as never }],
            }),
          'issuers[0].tenant',
        ],
        [
          () => createVerifier({ issuers: [{ ...base(), keepClaims: ['__proto__'] }] }),
          'issuers[0].keepClaims[0]',
        ],
        [
          () =>
            createVerifier({
              issuers: [
                { ...base(), keys: { jwksUri: 'https://idp.example/jwks', cooldownSeconds: -1 } },
              ],
            }),
          'issuers[0].keys.cooldownSeconds',
        ],
      ];
      for (const [build, field] of cases) expect(configError(build).field).toBe(field);
    });

    it('refuses a public key paired with an HS algorithm at construction', () => {
      for (const alg of ['HS256', 'HS384', 'HS512'] as const) {
        const error = configError(() =>
          createVerifier({
            issuers: [
              {
                ...base(),
                keys: { publicKeyPem: rs256.pem, algorithm: alg } as never,
                algorithms: [alg],
              },
            ],
          }),
        );
        expect(error.field).toBe('issuers[0].keys.algorithm');
      }
    });

    it('refuses cooldownSeconds 0 (it would turn off flood protection)', () => {
      const build = (cooldownSeconds: number) => () =>
        createVerifier({
          issuers: [{ ...base(), keys: { jwksUri: 'https://idp.example/jwks', cooldownSeconds } }],
        });
      expect(configError(build(0)).field).toBe('issuers[0].keys.cooldownSeconds');
      expect(configError(build(0.5)).field).toBe('issuers[0].keys.cooldownSeconds');
      expect(build(1)).not.toThrow();
    });

    it('names an inline key whose kty is an Object.prototype member (ConfigError, not TypeError)', () => {
      for (const kty of ['constructor', '__proto__', 'toString', 'hasOwnProperty']) {
        const error = configError(() =>
          createVerifier({
            issuers: [{ ...base(), keys: { jwks: { keys: [es256.jwk, { kty, kid: 'x' }] } } }],
          }),
        );
        expect(error.field).toBe('issuers[0].keys.jwks.keys[1]');
      }
    });

    it('accepts http JWKS URLs only on loopback hosts', () => {
      for (const jwksUri of [
        'http://127.0.0.1:8080/jwks',
        'http://localhost/jwks',
        'http://[::1]:1/jwks',
      ]) {
        expect(() => createVerifier({ issuers: [{ ...base(), keys: { jwksUri } }] })).not.toThrow();
      }
    });
  });
});
