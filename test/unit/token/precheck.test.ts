import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { TokenErrorCode } from '../../../src/errors.ts';
import {
  asciiBytes,
  decodeBase64url,
  decodeCanonicalBase64url,
} from '../../../src/token/base64url.ts';
import { precheckToken } from '../../../src/token/index.ts';
import { hasDuplicateMemberName } from '../../../src/token/json.ts';
import { splitCompact } from '../../../src/token/precheck.ts';
import { b64url, expectSyncCode, json } from './helpers.ts';

const HEADER = json({ alg: 'ES256', typ: 'JWT', kid: 'k1' });
const PAYLOAD = json({ iss: 'https://issuer.example.com/', sub: 'u' });
const SIG = b64url(new Uint8Array(64).fill(7));
const VALID = `${HEADER}.${PAYLOAD}.${SIG}`;

function withHeader(header: unknown): string {
  return `${json(header)}.${PAYLOAD}.${SIG}`;
}

function withPayloadText(text: string | Uint8Array): string {
  return `${HEADER}.${b64url(text)}.${SIG}`;
}

describe('precheckToken', () => {
  it('parses a canonical compact JWS once into header, payload, signature and signing input', () => {
    const result = precheckToken(VALID);
    expect(result.header).toEqual({ alg: 'ES256', typ: 'JWT', kid: 'k1' });
    expect(result.payload).toEqual({ iss: 'https://issuer.example.com/', sub: 'u' });
    expect([...result.signature]).toEqual([...new Uint8Array(64).fill(7)]);
    expect(result.signingInput).toBe(`${HEADER}.${PAYLOAD}`);
  });

  it('rejects an oversized token before decoding', () => {
    const big = `${HEADER}.${b64url('x'.repeat(9000))}.${SIG}`;
    expectSyncCode(() => precheckToken(big), 'token_too_large');
  });

  it('honours a configured size cap', () => {
    expect(() => precheckToken(VALID, VALID.length)).not.toThrow();
    expectSyncCode(() => precheckToken(VALID, VALID.length - 1), 'token_too_large');
  });

  it('rejects an empty token as missing', () => {
    expectSyncCode(() => precheckToken(''), 'token_missing');
  });

  describe('non-canonical compact form', () => {
    const cases: Record<string, string> = {
      'leading whitespace': ` ${VALID}`,
      'trailing newline': `${VALID}\n`,
      'inner space': `${HEADER}. ${PAYLOAD}.${SIG}`,
      padding: `${HEADER}.${PAYLOAD}.${SIG}==`,
      'padding in header': `${HEADER}=.${PAYLOAD}.${SIG}`,
      'plus sign': `${HEADER}.${PAYLOAD}.${SIG.slice(0, -1)}+`,
      slash: `${HEADER}.${PAYLOAD}.${SIG.slice(0, -1)}/`,
      'extra dot': `${VALID}.`,
      'four parts': `${VALID}.${SIG}`,
      'two parts': `${HEADER}.${PAYLOAD}`,
      'empty signature (stripped)': `${HEADER}.${PAYLOAD}.`,
      'empty payload': `${HEADER}..${SIG}`,
      'five-part JWE': `${HEADER}.${SIG}.${SIG}.${SIG}.${SIG}`,
      'non-ASCII character': `${HEADER}.${PAYLOAD}.${SIG}é`,
    };
    for (const [name, token] of Object.entries(cases)) {
      it(`rejects ${name}`, () => {
        expectSyncCode(() => precheckToken(token), 'token_malformed');
      });
    }
  });

  it('rejects non-zero trailing bits in base64url (decode then re-encode must match)', () => {
    // 'QQ' is the canonical encoding of 'A'; 'QR' decodes to the same byte with stray bits.
    expect(decodeBase64url('QQ')).toEqual(new Uint8Array([0x41]));
    expect(decodeBase64url('QR')).toBeNull();
    expect(decodeBase64url('QUI')).toEqual(new Uint8Array([0x41, 0x42]));
    expect(decodeBase64url('QUJ')).toBeNull();
    const sig = `${SIG.slice(0, -1)}${SIG.endsWith('A') ? 'B' : 'A'}`;
    expect(SIG.length % 4).toBe(2);
    expectSyncCode(() => precheckToken(`${HEADER}.${PAYLOAD}.${sig}x`), 'token_malformed');
    const header = `${HEADER.slice(0, -1)}${String.fromCharCode(HEADER.charCodeAt(HEADER.length - 1) + 1)}`;
    if (HEADER.length % 4 !== 0) {
      expectSyncCode(() => precheckToken(`${header}.${PAYLOAD}.${SIG}`), 'token_malformed');
    }
  });

  it('rejects a segment whose length is 1 mod 4', () => {
    expect(decodeBase64url('QUJDR')).toBeNull();
    expectSyncCode(() => precheckToken(`${HEADER}.${PAYLOAD}.${SIG}AAA`), 'token_malformed');
  });

  it('rejects duplicate member names in the header', () => {
    const header = b64url('{"alg":"ES256","alg":"none"}');
    expectSyncCode(() => precheckToken(`${header}.${PAYLOAD}.${SIG}`), 'token_malformed');
  });

  it('rejects duplicate member names in the payload, also when spelled with escapes', () => {
    expectSyncCode(
      () => precheckToken(withPayloadText('{"sub":"a","sub":"b"}')),
      'token_malformed',
    );
    expectSyncCode(
      () => precheckToken(withPayloadText('{"sub":"a","\\u0073ub":"b"}')),
      'token_malformed',
    );
    expectSyncCode(
      () => precheckToken(withPayloadText('{"act":{"sub":"a","sub":"b"}}')),
      'token_malformed',
    );
  });

  it('accepts equal member names in different objects', () => {
    const result = precheckToken(
      withPayloadText('{"sub":"a","act":{"sub":"b","act":{"sub":"c"}}}'),
    );
    expect(result.payload.sub).toBe('a');
  });

  it('rejects invalid UTF-8', () => {
    const bytes = new Uint8Array([0x7b, 0x22, 0x61, 0x22, 0x3a, 0x22, 0xc3, 0x28, 0x22, 0x7d]);
    expectSyncCode(() => precheckToken(withPayloadText(bytes)), 'token_malformed');
    const overlong = new Uint8Array([0x7b, 0x22, 0xc0, 0xaf, 0x22, 0x3a, 0x31, 0x7d]);
    expectSyncCode(() => precheckToken(withPayloadText(overlong)), 'token_malformed');
  });

  it('rejects a byte-order mark before the JSON', () => {
    expectSyncCode(() => precheckToken(withPayloadText('\ufeff{"sub":"a"}')), 'token_malformed');
  });

  it('rejects JSON that is not an object', () => {
    for (const text of ['[1,2]', '42', '"s"', 'null', 'true', '{"a":1} x', '{']) {
      expectSyncCode(() => precheckToken(withPayloadText(text)), 'token_malformed');
    }
    expectSyncCode(() => precheckToken(`${b64url('[]')}.${PAYLOAD}.${SIG}`), 'token_malformed');
  });

  it('rejects a header without a string alg', () => {
    expectSyncCode(() => precheckToken(withHeader({ typ: 'JWT' })), 'token_malformed');
    expectSyncCode(() => precheckToken(withHeader({ alg: 1 })), 'token_malformed');
    expectSyncCode(() => precheckToken(withHeader({ alg: '' })), 'token_malformed');
  });

  it('rejects crit with any content', () => {
    expectSyncCode(
      () => precheckToken(withHeader({ alg: 'ES256', crit: ['exp'] })),
      'token_unsupported',
    );
    expectSyncCode(
      () => precheckToken(withHeader({ alg: 'ES256', crit: [] })),
      'token_unsupported',
    );
  });

  it('rejects b64 in any form, including b64: false', () => {
    expectSyncCode(
      () => precheckToken(withHeader({ alg: 'ES256', b64: false, crit: ['b64'] })),
      'token_unsupported',
    );
    expectSyncCode(
      () => precheckToken(withHeader({ alg: 'ES256', b64: false })),
      'token_unsupported',
    );
    expectSyncCode(
      () => precheckToken(withHeader({ alg: 'ES256', b64: true })),
      'token_unsupported',
    );
  });

  it('rejects a JWE header (enc)', () => {
    expectSyncCode(
      () => precheckToken(withHeader({ alg: 'RSA-OAEP', enc: 'A256GCM' })),
      'token_unsupported',
    );
  });

  it('rejects a nested JWT (cty JWT in any letter case, with or without application/)', () => {
    for (const cty of ['JWT', 'jwt', 'application/jwt', 'Application/JWT']) {
      expectSyncCode(() => precheckToken(withHeader({ alg: 'ES256', cty })), 'token_unsupported');
    }
    expect(() => precheckToken(withHeader({ alg: 'ES256', cty: 'json' }))).not.toThrow();
  });

  it('rejects a nested JWT whose cty carries parameters or surrounding spaces', () => {
    for (const cty of ['JWT; x=y', ' JWT', 'jwt ', 'application/JWT;charset=utf-8', ' JwT ;a=b']) {
      expectSyncCode(() => precheckToken(withHeader({ alg: 'ES256', cty })), 'token_unsupported');
    }
    for (const cty of ['jwt+json', 'application/jwt-x', 'text/plain; x=JWT']) {
      expect(() => precheckToken(withHeader({ alg: 'ES256', cty }))).not.toThrow();
    }
  });

  it('ignores jku, x5u, jwk and x5c at this stage (never reads them)', () => {
    const header = {
      alg: 'ES256',
      jku: 'http://127.0.0.1:1/jwks',
      x5u: 'http://127.0.0.1:1/cert',
      jwk: { kty: 'EC' },
      x5c: ['AAAA'],
    };
    expect(precheckToken(withHeader(header)).header.jku).toBe(header.jku);
  });

  describe('kid', () => {
    // Visible ASCII only (0x21-0x7E), 1..256 characters: nothing that can break a log line.
    const bad: Record<string, unknown> = {
      'a space': 'k 1',
      'a leading space': ' k1',
      'a trailing space': 'k1 ',
      'a tab': 'k\t1',
      'a line feed (log injection)': 'k1\n{"level":"info"}',
      'a carriage return': 'k1\r',
      'a NUL': 'k\u00001',
      'an escape sequence': 'k\u001b[31m',
      'DEL (0x7F)': 'k\u007f',
      'a non-ASCII letter': 'clé',
      'a no-break space': 'k\u00a01',
      'a line separator (U+2028)': 'k\u20281',
      'a zero-width space': 'k\u200b1',
      'an emoji': 'k\u{1f511}',
      'a quote and spaces (SQL)': "k1' OR '1'='1",
      'a semicolon and spaces (shell)': 'k1; rm -rf /',
      '257 characters': 'k'.repeat(257),
      '300 characters': 'k'.repeat(300),
      'the empty string': '',
      'a number': 7,
      null: null,
      'an array': ['k1'],
    };
    for (const [name, kid] of Object.entries(bad)) {
      it(`rejects a kid with ${name}`, () => {
        expectSyncCode(() => precheckToken(withHeader({ alg: 'ES256', kid })), 'token_malformed');
      });
    }

    // What real providers issue, and anything else visible: a kid is only an exact Map key, so
    // path, URL, SQL or shell characters pass here and simply match no key.
    const good: Record<string, string> = {
      "RFC 7520's example (@ and .)": 'bilbo.baggins@hobbiton.example',
      'a URN (:)': 'urn:uuid:f81d4fae-7dec-11d0-a765-00a0c91e6bf6',
      'a DID URL (: and #)': 'did:web:issuer.example#key-1',
      'a fragment only': '#key-1',
      'Cognito base64 (+ / =)': 'abc+def/ghi=',
      'a Cloud KMS key-version name': `projects/p/locations/global/keyRings/${'r'.repeat(63)}/cryptoKeys/${'k'.repeat(63)}/cryptoKeyVersions/1`,
      'a path': '../../etc/passwd',
      'a backslash path': '..\\..\\windows',
      'a URL': 'http://evil.example/k?x=1&y=%2e',
      'a quote without spaces': "k1'--",
      'every visible ASCII character': Array.from({ length: 94 }, (_, i) =>
        String.fromCharCode(0x21 + i),
      ).join(''),
      '256 characters': 'k'.repeat(256),
      'one character': '~',
    };
    for (const [name, kid] of Object.entries(good)) {
      it(`accepts a kid with ${name}, unchanged`, () => {
        expect(precheckToken(withHeader({ alg: 'ES256', kid })).header.kid).toBe(kid);
      });
    }
  });
});

describe('checked headers shared by tokens', () => {
  it('gives tokens with the same header segment one frozen, checked header', () => {
    const other = `${HEADER}.${json({ iss: 'https://issuer.example.com/', sub: 'v' })}.${SIG}`;
    const first = precheckToken(VALID).header;
    const second = precheckToken(other).header;
    expect(second).toBe(first);
    expect(Object.isFrozen(first)).toBe(true);
    expect(precheckToken(other).payload.sub).toBe('v');
  });

  it('refuses a refused header every time, never from memory', () => {
    const refused: [Record<string, unknown>, TokenErrorCode][] = [
      [{ alg: 'ES256', crit: ['exp'] }, 'token_unsupported'],
      [{ alg: 'ES256', kid: 'a b' }, 'token_malformed'],
      [{ alg: '' }, 'token_malformed'],
    ];
    for (const [header, code] of refused) {
      for (let i = 0; i < 3; i++) expectSyncCode(() => precheckToken(withHeader(header)), code);
    }
  });

  it('does not share a header with a nested member (its object could be changed)', () => {
    const token = withHeader({ alg: 'ES256', jwk: { kty: 'EC' } });
    const first = precheckToken(token).header;
    expect(precheckToken(token).header).not.toBe(first);
    expect(Object.isFrozen(first)).toBe(false);
  });

  it('stays correct past its bound of distinct headers', () => {
    for (let i = 0; i < 200; i++) {
      expect(precheckToken(withHeader({ alg: 'ES256', kid: `k${i}` })).header.kid).toBe(`k${i}`);
    }
    expect(precheckToken(VALID).header.kid).toBe('k1');
  });
});

// The fast paths of the pre-check (issue 11) must answer exactly as the rules they replace.
describe('fast paths equal the rules', () => {
  const COMPACT_JWS = /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/;
  const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';

  // Characters around the alphabet's edges: Node's decoder takes `+` and `/` and skips others.
  const char = fc.constantFrom(
    ...'Aa0-_gw',
    '.',
    '.',
    '=',
    '+',
    '/',
    ' ',
    '\n',
    'é',
    '\u0000',
    '\ud800',
    '\u{1F600}',
  );

  it('splitCompact and strict segment decoding accept exactly the compact-form pattern', () => {
    fc.assert(
      fc.property(fc.array(char, { maxLength: 16 }), (chars) => {
        const token = chars.join('');
        const split = splitCompact(token);
        const segments = split === null ? null : token.split('.');
        const decoded = segments?.every((s) => decodeCanonicalBase64url(s) !== null) ?? false;
        const canonical =
          COMPACT_JWS.test(token) && token.split('.').every((s) => decodeBase64url(s) !== null);
        expect(decoded, JSON.stringify(token)).toBe(canonical);
        if (split !== null) {
          expect(split.firstDot).toBe(token.indexOf('.'));
          expect(split.secondDot).toBe(token.lastIndexOf('.'));
        }
      }),
      { numRuns: 10_000 },
    );
  });

  it('precheckToken refuses as malformed every token outside the pattern, whatever its header', () => {
    // A header with crit would be refused as unsupported: a malformed segment anywhere must win.
    const crit = json({ alg: 'ES256', crit: ['exp'] });
    fc.assert(
      fc.property(
        fc.constantFrom(HEADER, crit),
        fc.array(char, { maxLength: 6 }),
        fc.nat(2),
        fc.nat(64),
        (header, noise, part, at) => {
          const parts = [header, PAYLOAD, SIG];
          const target = parts[part]!;
          const i = at % (target.length + 1);
          parts[part] = `${target.slice(0, i)}${noise.join('')}${target.slice(i)}`;
          const token = parts.join('.');
          const canonical =
            COMPACT_JWS.test(token) && token.split('.').every((s) => decodeBase64url(s) !== null);
          if (!canonical) expectSyncCode(() => precheckToken(token), 'token_malformed');
        },
      ),
      { numRuns: 5000 },
    );
  });

  it('asciiBytes encodes a signing input exactly as UTF-8 does', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom(...`${ALPHABET}.`), maxLength: 64 }),
        (text) => {
          expect([...asciiBytes(text)]).toEqual([...new TextEncoder().encode(text)]);
        },
      ),
    );
  });

  it('decodeCanonicalBase64url decodes every text exactly as the strict decoder', () => {
    const unit = fc.oneof(fc.constantFrom(...ALPHABET), char);
    fc.assert(
      fc.property(fc.array(unit, { maxLength: 48 }), (chars) => {
        const text = chars.join('');
        const strict = decodeBase64url(text);
        const canonical = decodeCanonicalBase64url(text);
        expect(canonical === null ? null : [...canonical], text).toEqual(
          strict === null ? null : [...strict],
        );
      }),
      { numRuns: 10_000 },
    );
  });
});

describe('hasDuplicateMemberName', () => {
  it('finds duplicates only within one object', () => {
    expect(hasDuplicateMemberName('{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}')).toBe(false);
    expect(hasDuplicateMemberName('{"a":1,"b":{"a":2,"a":3}}')).toBe(true);
    expect(hasDuplicateMemberName('{"a":"\\"a\\"","b":"a"}')).toBe(false);
    expect(hasDuplicateMemberName('{"a\\"":1,"a\\u0022":2}')).toBe(true);
    expect(hasDuplicateMemberName('[{"x":1,"x":1}]')).toBe(true);
  });
});
