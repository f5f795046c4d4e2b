import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/errors.ts';
import {
  assertPermission,
  isValidPermission,
  parsePermission,
  permissionMatches,
} from '../../../src/permissions/index.ts';

describe('permission grammar', () => {
  it.each([
    ['read:posts', false],
    ['delete:posts:42', false],
    ['a.b:c~d:e%20f:g@h:i+j:k-l_m', false],
    [Array.from({ length: 16 }, () => 'a').join(':'), false],
    [`read:${'x'.repeat(128)}`, false],
    ['*', true],
    ['read:*', true],
    ['*:posts', true],
    ['*:*:*', true],
  ])('accepts %s (wildcards allowed: %s)', (text, allowWildcards) => {
    expect(isValidPermission(text, { allowWildcards })).toBe(true);
  });

  it.each([
    ['', 'empty'],
    ['read', 'a single segment'],
    ['read:', 'an empty last segment'],
    [':posts', 'an empty first segment'],
    ['read::posts', 'an empty middle segment'],
    ['read:po sts', 'a space'],
    ['read:posts/1', 'a slash'],
    ['read:pöst', 'a non-ASCII letter'],
    ['read:posts:*', 'a wildcard in a required permission'],
    ['*', 'a bare wildcard in a required permission'],
    [Array.from({ length: 17 }, () => 'a').join(':'), 'more than 16 segments'],
    [`read:${'x'.repeat(129)}`, 'a segment over 128 characters'],
    [Array.from({ length: 5 }, () => 'x'.repeat(110)).join(':'), 'more than 512 characters'],
  ])('rejects %j as a required permission (%s)', (text) => {
    expect(isValidPermission(text)).toBe(false);
  });

  it.each([
    ['read:post*', 'a wildcard inside a segment'],
    ['read:**', 'a double wildcard'],
    ['*read:posts', 'a leading wildcard inside a segment'],
    ['*:', 'an empty segment after a wildcard'],
  ])('rejects %j as a grant (%s)', (text) => {
    expect(isValidPermission(text, { allowWildcards: true })).toBe(false);
  });

  it('splits a permission into segments', () => {
    expect(parsePermission('delete:posts:42')).toEqual(['delete', 'posts', '42']);
  });

  it('names the field and the expected form when a policy permission is malformed', () => {
    const act = () => assertPermission('read', 'roles.editor.grants[0]');
    expect(act).toThrow(ConfigError);
    expect(act).toThrow(/^roles\.editor\.grants\[0\]: expected a permission like read:posts/);
  });

  it('throws ConfigError for a malformed permission without a field', () => {
    expect(() => parsePermission('read:*')).toThrow(ConfigError);
  });
});

describe('wildcard semantics (reference matcher)', () => {
  it.each([
    ['read:posts', 'read:posts', true],
    ['read:posts', 'read:posts:42', false],
    ['read:posts:42', 'read:posts', false],
    ['read:posts', 'read:comments', false],
    ['read:posts', 'Read:posts', false],
    ['read:*', 'read:posts', true],
    ['read:*', 'read:posts:42', true],
    ['read:*', 'write:posts', false],
    ['*:posts', 'read:posts', true],
    ['*:posts', 'read:posts:42', false],
    ['*:posts', 'read:comments', false],
    ['delete:posts:*', 'delete:posts:42', true],
    ['delete:posts:*', 'delete:posts:42:comments', true],
    ['delete:posts:*', 'delete:posts', false],
    ['*:posts:*', 'read:posts:1', true],
    ['*:posts:*', 'read:posts', false],
    ['read:*:42', 'read:posts:42', true],
    ['read:*:42', 'read:posts:43', false],
    ['read:*:42', 'read:posts:42:x', false],
    ['*:*', 'read:posts', true],
    ['*:*', 'read:posts:42', true],
    ['*', 'read:posts', true],
    ['*', 'a:b:c:d:e', true],
    ['read:posts', 'read:*', false],
    ['read', 'read', false],
  ])('grant %s matches %s: %s', (grant, required, expected) => {
    expect(permissionMatches(grant, required)).toBe(expected);
  });
});
