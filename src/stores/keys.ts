/**
 * Storage keys for subjects and tenants. Every part is percent-encoded before it is joined, so a
 * subject such as `alice:admin`, `../x` or `a%3Ab` can never address another subject's or another
 * tenant's record. The KV and DynamoDB stores build their keys with these helpers too.
 */

import type { SubjectKey } from '../types.ts';

const UNRESERVED = /^[A-Za-z0-9._~-]*$/;
const UNRESERVED_CHAR = /^[A-Za-z0-9._~-]$/;

const encoder = new TextEncoder();

function hex2(byte: number): string {
  return byte.toString(16).toUpperCase().padStart(2, '0');
}

/**
 * Percent-encodes everything outside `[A-Za-z0-9._~-]` (RFC 3986 unreserved), as UTF-8 bytes.
 * Unlike `encodeURIComponent` it also encodes `!'()*`, and it never throws: a lone UTF-16
 * surrogate (possible in a JSON `sub`) becomes `%uD800`, which no well-formed input produces
 * because a literal `%` always becomes `%25`. The result never contains `:`, `/` or a bare `%`.
 */
export function encodeKeyPart(part: string): string {
  if (UNRESERVED.test(part)) return part;
  let out = '';
  // for..of walks code points, so a valid surrogate pair is one character here.
  for (const char of part) {
    if (UNRESERVED_CHAR.test(char)) {
      out += char;
      continue;
    }
    const code = char.codePointAt(0) ?? 0;
    if (code >= 0xd800 && code <= 0xdfff) {
      // TextEncoder would turn every lone surrogate into U+FFFD, making distinct subjects collide.
      out += `%u${code.toString(16).toUpperCase()}`;
      continue;
    }
    for (const byte of encoder.encode(char)) out += `%${hex2(byte)}`;
  }
  return out;
}

/**
 * The key for a tenant's partition: `-` without tenancy, `t:<encoded tenant>` otherwise.
 * An absent tenant and the empty tenant `''` get different keys.
 */
export function tenantStorageKey(tenant: string | undefined): string {
  return tenant === undefined ? '-' : `t:${encodeKeyPart(tenant)}`;
}

/**
 * The key for one subject in one tenant: `<tenant key>/s:<encoded subject>`. Injective: encoded
 * parts never contain `/`, so the first `/` always ends the tenant part.
 */
export function subjectStorageKey(key: SubjectKey): string {
  return `${tenantStorageKey(key.tenant)}/s:${encodeKeyPart(key.subject)}`;
}
