import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { splitScopes } from '../../../src/token/claims.ts';
import { hasDuplicateMemberName, parseJsonObject } from '../../../src/token/json.ts';

/**
 * A JSON value as written, members in order and repeats allowed, so a generated text can hold
 * duplicate names and the test knows, from the tree, whether it does.
 */
type Written =
  | { kind: 'scalar'; text: string }
  | { kind: 'string'; value: string }
  | { kind: 'array'; items: Written[] }
  | { kind: 'object'; members: [string, Written][] };

// Names and strings rich in what the counting argument is about: colons, quotes, backslashes.
const NAMES = ['a', 'b', 'a:', ':', '::', 'iss', '"', '\\', '__proto__', 'é', 'x y'];
const piece = fc.constantFrom('a', ':', '"', '\\', ' ', 'https://', 'é', '\u2028', 'z');
const stringValue = fc.array(piece, { maxLength: 4 }).map((parts) => parts.join(''));

const { value } = fc.letrec<{ value: Written }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constantFrom('1', '-2.5e3', 'true', 'false', 'null').map((text) => ({
      kind: 'scalar' as const,
      text,
    })),
    stringValue.map((v) => ({ kind: 'string' as const, value: v })),
    fc.array(tie('value'), { maxLength: 3 }).map((items) => ({ kind: 'array' as const, items })),
    fc
      .array(fc.tuple(fc.constantFrom(...NAMES), tie('value')), { maxLength: 5 })
      .map((members) => ({ kind: 'object' as const, members })),
  ),
}));

const topObject = fc
  .array(fc.tuple(fc.constantFrom(...NAMES), value), { maxLength: 6 })
  .map((members): Written => ({ kind: 'object', members }));

/** A string literal, sometimes with a character written as a \u escape (same parsed string). */
function literal(text: string, escapeAt: number): string {
  if (text.length === 0 || escapeAt < 0) return JSON.stringify(text);
  const i = escapeAt % text.length;
  const code = text.charCodeAt(i).toString(16).padStart(4, '0');
  return `${JSON.stringify(text.slice(0, i)).slice(0, -1)}\\u${code}${JSON.stringify(text.slice(i + 1)).slice(1)}`;
}

function write(node: Written, style: { space: string; escapeAt: number }): string {
  switch (node.kind) {
    case 'scalar':
      return node.text;
    case 'string':
      return literal(node.value, style.escapeAt);
    case 'array':
      return `[${node.items.map((item) => write(item, style)).join(',')}]`;
    case 'object':
      return `{${node.members
        .map(
          ([name, member]) =>
            `${literal(name, style.escapeAt)}${style.space}:${style.space}${write(member, style)}`,
        )
        .join(`,${style.space}`)}}`;
  }
}

function repeatsAName(node: Written): boolean {
  if (node.kind === 'array') return node.items.some(repeatsAName);
  if (node.kind !== 'object') return false;
  const names = node.members.map(([name]) => name);
  return new Set(names).size < names.length || node.members.some(([, m]) => repeatsAName(m));
}

describe('parseJsonObject', () => {
  it('refuses a text exactly when some object in it repeats a member name', () => {
    fc.assert(
      fc.property(
        topObject,
        fc.constantFrom('', ' ', '\n'),
        fc.integer({ min: -3, max: 5 }),
        (tree, space, escapeAt) => {
          const text = write(tree, { space, escapeAt });
          const parsed = parseJsonObject(text);
          expect(parsed === null, text).toBe(repeatsAName(tree));
          expect(parsed === null, text).toBe(hasDuplicateMemberName(text));
          if (parsed !== null) expect(parsed).toEqual(JSON.parse(text));
        },
      ),
      { numRuns: 20_000 },
    );
  });

  // Texts built against the colon count: a duplicate whose dropped literals carry the colons
  // that would otherwise be missing, whitespace, escapes that hide a colon or a name.
  it.each([
    '{"a":1,"a":2}',
    '{"a:":1,"a:":2}',
    '{"a":"x:","a":"y"}',
    '{"a":"y","a":"x:"}',
    '{"a" : 1 , "a" : 2}',
    '{"__proto__":1,"__proto__":2}',
    '{"b":{"a":1,"a":2}}',
    '{"b":[{"a":1},{"c":2,"c":3}]}',
    '{"a":1,"\\u0061":2}',
    '{"a":"\\u003a","a":1}',
    '{"\\u003a":1,":":2}',
    '{"a":"https://x","a":"https://y","b":"::"}',
  ])('refuses %s', (text) => {
    expect(parseJsonObject(text)).toBeNull();
  });

  it.each([
    '{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}',
    '{"iss":"https://id.example/","aud":["urn:a:b","https://api"],"a:b":"c:d"}',
    '{"a":"\\u003a","b":":"}',
    '{"a" : 1 , "b" : 2}',
    '{}',
  ])('accepts %s', (text) => {
    expect(parseJsonObject(text)).toEqual(JSON.parse(text));
  });
});

describe('splitScopes', () => {
  it('splits on single spaces and drops empty pieces, as split + filter would', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: fc.constantFrom('a', 'b', ':', ' ', '\t'), maxLength: 12 }),
        (text) => {
          expect(splitScopes(text)).toEqual(text.split(' ').filter((s) => s.length > 0));
        },
      ),
      { numRuns: 5000 },
    );
  });
});
