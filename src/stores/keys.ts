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

const decoder = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const HEX2 = /^[0-9A-F]{2}$/;
const SURROGATE = /^D[89A-F][0-9A-F]{2}$/;

/**
 * The exact inverse of {@link encodeKeyPart}: the part it was made from, or undefined when `part`
 * is not something encodeKeyPart produces (a bare `%`, lower-case hex, `%41` for `A`, bytes that
 * are not UTF-8, `%uD800%uDC00` for a character it would encode as UTF-8). Tools that list keys
 * (export) decode with it; only canonical encodings decode, so decoding stays injective too.
 */
export function decodeKeyPart(part: string): string | undefined {
  if (UNRESERVED.test(part)) return part;
  let out = '';
  let bytes: number[] = [];
  const flush = (): boolean => {
    if (bytes.length === 0) return true;
    try {
      out += decoder.decode(new Uint8Array(bytes));
    } catch {
      return false;
    }
    bytes = [];
    return true;
  };
  for (let i = 0; i < part.length; ) {
    const char = part[i]!;
    if (char !== '%') {
      if (!UNRESERVED_CHAR.test(char) || !flush()) return undefined;
      out += char;
      i += 1;
    } else if (part[i + 1] === 'u') {
      const hex = part.slice(i + 2, i + 6);
      if (!SURROGATE.test(hex) || !flush()) return undefined;
      out += String.fromCharCode(Number.parseInt(hex, 16));
      i += 6;
    } else {
      const hex = part.slice(i + 1, i + 3);
      if (!HEX2.test(hex)) return undefined;
      bytes.push(Number.parseInt(hex, 16));
      i += 3;
    }
  }
  if (!flush()) return undefined;
  // Rejects every non-canonical spelling (an encoded unreserved character, a surrogate pair
  // spelt as two `%u`), so each decodable key has exactly one source string.
  return encodeKeyPart(out) === part ? out : undefined;
}

/**
 * The tenant a {@link tenantStorageKey} was built from: `{ tenant: undefined }` for `-`, or
 * undefined when `key` is not a tenant key.
 */
export function parseTenantStorageKey(key: string): { tenant: string | undefined } | undefined {
  if (key === '-') return { tenant: undefined };
  if (!key.startsWith('t:')) return undefined;
  const tenant = decodeKeyPart(key.slice(2));
  return tenant === undefined ? undefined : { tenant };
}

/** The subject and tenant a {@link subjectStorageKey} was built from; undefined if it is not one. */
export function parseSubjectStorageKey(key: string): SubjectKey | undefined {
  const slash = key.indexOf('/');
  if (slash < 0 || key.slice(slash + 1, slash + 3) !== 's:') return undefined;
  const tenant = parseTenantStorageKey(key.slice(0, slash));
  const subject = decodeKeyPart(key.slice(slash + 3));
  if (tenant === undefined || subject === undefined) return undefined;
  return tenant.tenant === undefined ? { subject } : { subject, tenant: tenant.tenant };
}
