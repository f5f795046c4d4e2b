import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { encodeKeyPart, subjectStorageKey, tenantStorageKey } from '../../../src/stores/index.ts';
import {
  decodeKeyPart,
  parseSubjectStorageKey,
  parseTenantStorageKey,
} from '../../../src/stores/keys.ts';
import type { SubjectKey } from '../../../src/types.ts';

/** Lists of pairwise different keys; an absent tenant counts as different from `''`. */
function distinctKeys(text: fc.Arbitrary<string>): fc.Arbitrary<SubjectKey[]> {
  const key = fc
    .record({ tenant: fc.option(text, { nil: undefined }), subject: text })
    .map(
      ({ tenant, subject }): SubjectKey =>
        tenant === undefined ? { subject } : { subject, tenant },
    );
  return fc.uniqueArray(key, {
    maxLength: 40,
    comparator: (a, b) => a.subject === b.subject && a.tenant === b.tenant,
  });
}

/** Inverse of encodeKeyPart, written independently: `%uXXXX` is a lone surrogate, else UTF-8. */
function decodePart(part: string): string {
  return part
    .split(/(%u[0-9A-F]{4})/)
    .map((piece) =>
      piece.startsWith('%u')
        ? String.fromCharCode(Number.parseInt(piece.slice(2), 16))
        : decodeURIComponent(piece),
    )
    .join('');
}

/** Splits a subject key at its first `/`; a key that does not parse yields undefined. */
function decodeSubjectKey(key: string): SubjectKey | undefined {
  const slash = key.indexOf('/');
  const tenantPart = key.slice(0, slash);
  const subjectPart = key.slice(slash + 1);
  if (slash < 0 || !subjectPart.startsWith('s:')) return undefined;
  const subject = decodePart(subjectPart.slice(2));
  if (tenantPart === '-') return { subject };
  if (!tenantPart.startsWith('t:')) return undefined;
  return { subject, tenant: decodePart(tenantPart.slice(2)) };
}

/** Strings made of pieces of the key syntax, so structural collisions are likely to be tried. */
const syntaxString = fc
  .array(
    fc.constantFrom(':', '/', '%', '%2F', '%3A', 's:', 't:', '-', '-/s:', 'a', '~', '\ud800', 'é'),
    {
      maxLength: 6,
    },
  )
  .map((pieces) => pieces.join(''));

describe('encodeKeyPart', () => {
  it('leaves unreserved characters as they are', () => {
    const part = 'Alice-01._~';

    const encoded = encodeKeyPart(part);

    expect(encoded).toBe('Alice-01._~');
  });

  it('always encodes colon, slash and percent', () => {
    const part = 'a:b/c%d';

    const encoded = encodeKeyPart(part);

    expect(encoded).toBe('a%3Ab%2Fc%25d');
  });

  it('encodes the characters encodeURIComponent leaves alone', () => {
    const part = "!'()*";

    const encoded = encodeKeyPart(part);

    expect(encoded).toBe('%21%27%28%29%2A');
  });

  it('encodes non-ASCII characters as UTF-8 bytes', () => {
    const part = 'é😀';

    const encoded = encodeKeyPart(part);

    expect(encoded).toBe('%C3%A9%F0%9F%98%80');
  });

  it('keeps distinct lone surrogates distinct', () => {
    const high = '\ud800';
    const low = '\udc00';

    const encoded = [encodeKeyPart(high), encodeKeyPart(low)];

    expect(encoded[0]).not.toBe(encoded[1]);
  });
});

describe('subjectStorageKey', () => {
  it('keeps an absent tenant apart from the empty tenant', () => {
    const untenanted = subjectStorageKey({ subject: 'alice' });

    const emptyTenant = subjectStorageKey({ subject: 'alice', tenant: '' });

    expect(untenanted).not.toBe(emptyTenant);
  });

  it('does not let a subject with a colon or slash reach into another tenant', () => {
    const smuggled = subjectStorageKey({ subject: 'x/s:alice' });

    const real = subjectStorageKey({ subject: 'alice', tenant: 'x' });

    expect(smuggled).not.toBe(real);
  });

  it('keeps an encoded-looking subject apart from the raw one', () => {
    const encodedLooking = subjectStorageKey({ subject: 'a%3Ab' });

    const raw = subjectStorageKey({ subject: 'a:b' });

    expect(encodedLooking).not.toBe(raw);
  });

  it('is injective over random tenant and subject pairs', () => {
    const keys = distinctKeys(fc.string({ unit: 'binary', maxLength: 12 }));

    const property = fc.property(keys, (list) => {
      const encoded = new Set(list.map(subjectStorageKey));
      return encoded.size === list.length;
    });

    fc.assert(property, { numRuns: 300 });
  });

  it('is injective over pairs built from the key syntax itself', () => {
    const keys = distinctKeys(syntaxString);

    const property = fc.property(keys, (list) => {
      const encoded = new Set(list.map(subjectStorageKey));
      return encoded.size === list.length;
    });

    fc.assert(property, { numRuns: 300 });
  });

  it('can be decoded back to the tenant and subject it was built from', () => {
    const keys = distinctKeys(fc.oneof(syntaxString, fc.string({ unit: 'binary', maxLength: 12 })));

    const property = fc.property(keys, (list) =>
      list.every((key) => {
        const decoded = decodeSubjectKey(subjectStorageKey(key));
        return decoded?.subject === key.subject && decoded.tenant === key.tenant;
      }),
    );

    fc.assert(property, { numRuns: 300 });
  });
});

describe('tenantStorageKey', () => {
  it('never produces a slash, so it cannot swallow part of a subject key', () => {
    const key = tenantStorageKey('a/b');

    expect(key).not.toContain('/');
  });
});

/** Any UTF-16 code units, lone surrogates included (a JSON `sub` may carry them). */
const codeUnits = fc.string({
  unit: fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code)),
  maxLength: 12,
});

describe('decodeKeyPart', () => {
  it('gives back every part encodeKeyPart was given', () => {
    const parts = fc.oneof(codeUnits, syntaxString, fc.string({ unit: 'binary', maxLength: 12 }));

    const property = fc.property(parts, (part) => decodeKeyPart(encodeKeyPart(part)) === part);

    fc.assert(property, { numRuns: 500 });
  });

  it('agrees with an independently written decoder', () => {
    const property = fc.property(fc.oneof(codeUnits, syntaxString), (part) => {
      const encoded = encodeKeyPart(part);
      return decodeKeyPart(encoded) === decodePart(encoded);
    });

    fc.assert(property, { numRuns: 300 });
  });

  it('keeps a leading byte order mark and lone surrogates', () => {
    const parts = ['\ufeffalice', '\ud800', '\udc00\ud800', 'a\udfffb', ''];

    const decoded = parts.map((part) => decodeKeyPart(encodeKeyPart(part)));

    expect(decoded).toEqual(parts);
  });

  it('refuses what encodeKeyPart never produces', () => {
    const bad = [
      '%',
      '%4',
      '%41',
      '%3a',
      'a:b',
      'a/b',
      '%FF',
      '%C3',
      '%ud800',
      '%uD800%uDC00',
      '%uE000',
      'é',
    ];

    const decoded = bad.map(decodeKeyPart);

    expect(decoded).toEqual(bad.map(() => undefined));
  });
});

describe('parseSubjectStorageKey', () => {
  it('gives back the tenant and subject of every key', () => {
    const keys = distinctKeys(fc.oneof(syntaxString, codeUnits));

    const property = fc.property(keys, (list) =>
      list.every((key) => {
        const parsed = parseSubjectStorageKey(subjectStorageKey(key));
        return (
          parsed !== undefined &&
          parsed.subject === key.subject &&
          parsed.tenant === key.tenant &&
          'tenant' in parsed === (key.tenant !== undefined)
        );
      }),
    );

    fc.assert(property, { numRuns: 300 });
  });

  it('refuses keys that no subject and tenant produce', () => {
    const bad = ['-', '-/alice', 'x/s:alice', 't:a/b/s:c', '-/s:a/b', 't:%zz/s:a', '-/s:%41'];

    const parsed = bad.map(parseSubjectStorageKey);

    expect(parsed).toEqual(bad.map(() => undefined));
  });

  it('reads the tenant key on its own', () => {
    const keys = [tenantStorageKey(undefined), tenantStorageKey(''), tenantStorageKey('a/b')];

    const parsed = keys.map(parseTenantStorageKey);

    expect(parsed).toEqual([{ tenant: undefined }, { tenant: '' }, { tenant: 'a/b' }]);
  });
});
