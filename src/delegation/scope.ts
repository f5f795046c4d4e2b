/**
 * Scope arithmetic for delegation. A scope and an actor ceiling are lists of permission patterns
 * (grants: `read:*`, `read:posts:42`). Authority may only shrink: every pattern of a narrower
 * list must be covered by a pattern of the wider one, with the wildcard semantics of
 * {@link permissionMatches}.
 */
import { isValidPermission, permissionMatches } from '../permissions/index.ts';

/**
 * Whether every permission `inner` matches is also matched by `outer`. `*` inside a pattern is
 * one segment; `*` as the last segment is one or more segments.
 */
export function patternCovers(outer: string, inner: string): boolean {
  if (
    !isValidPermission(outer, { allowWildcards: true }) ||
    !isValidPermission(inner, { allowWildcards: true })
  ) {
    return false;
  }
  const o = outer.split(':');
  const i = inner.split(':');
  for (let k = 0; k < o.length; k++) {
    const segment = o[k];
    // A trailing `*` takes one or more segments; whatever `inner` has from here is at least one.
    if (segment === '*' && k === o.length - 1) return i.length > k;
    if (k >= i.length) return false;
    const want = i[k];
    // `inner`'s own trailing `*` can take several segments, which a fixed-length outer cannot.
    if (want === '*' && k === i.length - 1) return false;
    if (segment !== '*' && segment !== want) return false;
  }
  return o.length === i.length;
}

/** Whether some pattern of `list` covers `pattern`. */
export function listCovers(list: readonly string[], pattern: string): boolean {
  for (const outer of list) if (patternCovers(outer, pattern)) return true;
  return false;
}

/** Whether some pattern of `list` matches the concrete `permission`. */
export function listMatches(list: readonly string[], permission: string): boolean {
  for (const grant of list) if (permissionMatches(grant, permission)) return true;
  return false;
}

/**
 * A `scope` parameter (RFC 6749 §3.3: space-separated) as a list of permission patterns, or the
 * first item that is not one. Duplicates are dropped; order is kept.
 */
export function parseScope(text: string): { scope: string[] } | { bad: string } {
  const items = text.split(' ').filter((item) => item.length > 0);
  // A Set keeps this linear: the endpoint parses whatever a client sends before any check.
  const seen = new Set<string>();
  for (const item of items) {
    if (!isValidPermission(item, { allowWildcards: true })) return { bad: item };
    seen.add(item);
  }
  return { scope: [...seen] };
}

/** Whether some concrete permission matches both patterns (used to find a deny inside a scope). */
export function patternsOverlap(a: string, b: string): boolean {
  if (
    !isValidPermission(a, { allowWildcards: true }) ||
    !isValidPermission(b, { allowWildcards: true })
  ) {
    return false;
  }
  const x = a.split(':');
  const y = b.split(':');
  const shared = Math.min(x.length, y.length);
  for (let i = 0; i < shared; i++) {
    if (x[i] !== '*' && y[i] !== '*' && x[i] !== y[i]) return false;
  }
  if (x.length === y.length) return true;
  // The shorter one reaches further only through its trailing `*` (one or more segments).
  const shorter = x.length < y.length ? x : y;
  return shorter[shorter.length - 1] === '*';
}

/**
 * The pattern matching exactly the permissions both `a` and `b` match, or null when they share
 * none. Lets a delegation be applied to a whole permission set (AWS principal-mode policies list
 * every route a token may call, so they need the narrowed grants, not one check).
 */
export function meetPatterns(a: string, b: string): string | null {
  if (
    !isValidPermission(a, { allowWildcards: true }) ||
    !isValidPermission(b, { allowWildcards: true })
  ) {
    return null;
  }
  const x = a.split(':');
  const y = b.split(':');
  const xTail = x[x.length - 1] === '*';
  const yTail = y[y.length - 1] === '*';
  const meet = (s: string, t: string): string | null =>
    s === '*' ? t : t === '*' || s === t ? s : null;
  if (!xTail && !yTail) {
    if (x.length !== y.length) return null;
  }
  // With a trailing `*` (one or more segments), the other side decides the length from there on.
  let longer = x;
  let shorter = y;
  if (y.length > x.length || (y.length === x.length && !yTail)) {
    longer = y;
    shorter = x;
  }
  const shorterTail = shorter === x ? xTail : yTail;
  if (shorter.length < longer.length && !shorterTail) return null;
  const out: string[] = [];
  for (let i = 0; i < longer.length; i++) {
    if (i < shorter.length - (shorterTail ? 1 : 0)) {
      const segment = meet(shorter[i]!, longer[i]!);
      if (segment === null) return null;
      out.push(segment);
    } else {
      out.push(longer[i]!);
    }
  }
  return out.join(':');
}
