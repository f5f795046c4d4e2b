/**
 * JSON object parsing that refuses duplicate member names. RFC 7515 §5.2 and RFC 7519 §4 let a
 * parser either reject duplicates or keep the last one; JSON.parse keeps the last, so two
 * components reading the same token could disagree about a claim. We reject instead.
 */

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_ARRAY = 0x5b;
const CLOSE_ARRAY = 0x5d;
const COMMA = 0x2c;

/**
 * True when some object in `text` repeats a member name (compared after unescaping, so `"a"`
 * and `"\u0061"` collide). `text` must already be valid JSON: the scan only tracks structure
 * and strings, and leaves syntax checking to JSON.parse.
 */
export function hasDuplicateMemberName(text: string): boolean {
  const stack: (Set<string> | null)[] = [];
  // Member names seen in the innermost object; null inside an array or at the top level.
  let names: Set<string> | null = null;
  let expectName = false;
  const length = text.length;
  for (let i = 0; i < length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      let j = i + 1;
      let escaped = false;
      while (j < length) {
        const d = text.charCodeAt(j);
        if (d === QUOTE) break;
        if (d === BACKSLASH) {
          escaped = true;
          j += 2;
        } else {
          j++;
        }
      }
      if (expectName && names !== null) {
        const name = escaped ? (JSON.parse(text.slice(i, j + 1)) as string) : text.slice(i + 1, j);
        if (names.has(name)) return true;
        names.add(name);
        expectName = false;
      }
      i = j;
    } else if (c === OPEN_OBJECT) {
      stack.push(names);
      names = new Set();
      expectName = true;
    } else if (c === OPEN_ARRAY) {
      stack.push(names);
      names = null;
      expectName = false;
    } else if (c === CLOSE_OBJECT || c === CLOSE_ARRAY) {
      names = stack.pop() ?? null;
      expectName = false;
    } else if (c === COMMA) {
      expectName = names !== null;
    }
  }
  return false;
}

const COLON = ':';

function colonsIn(text: string): number {
  let count = 0;
  for (let i = text.indexOf(COLON); i !== -1; i = text.indexOf(COLON, i + 1)) count++;
  return count;
}

/**
 * True when `value`, parsed from `text`, provably has no duplicate member names, by counting
 * instead of scanning; false when it cannot tell (the caller then scans). The fresh-token path
 * parses a payload per request and this is a third of the scan's cost (issue 11).
 *
 * Why it is sound: in JSON text without a backslash, every string literal's characters are the
 * parsed string's. Each member occurrence has exactly one structural colon, so the text's colons
 * are N (member occurrences, duplicates included) plus the colons inside string literals. JSON.parse
 * keeps one property per distinct name, so K (own properties over all parsed objects) ≤ N, with
 * equality exactly when nothing repeats. Subtracting the colons of the strings that survived
 * parsing (names and values) leaves U = N + colons of literals a duplicate dropped ≥ N. So U === K
 * forces N === K: no duplicates. Anything else (a backslash, a dropped literal, a duplicate) falls
 * back to the scan. It relies on `value` being JSON.parse's own result (no reviver), unchanged.
 */
function countedUnique(text: string, value: object): boolean {
  if (text.indexOf('\\') !== -1) return false;
  let unexplained = colonsIn(text);
  let members = 0;
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const current = pending.pop();
    if (typeof current === 'string') {
      unexplained -= colonsIn(current);
    } else if (Array.isArray(current)) {
      for (const item of current) pending.push(item);
    } else if (typeof current === 'object' && current !== null) {
      const names = Object.keys(current);
      members += names.length;
      for (const name of names) {
        unexplained -= colonsIn(name);
        pending.push((current as Record<string, unknown>)[name]);
      }
    }
  }
  return unexplained === members;
}

/** Parses `text` as a JSON object without duplicate member names; null for anything else. */
export function parseJsonObject(text: string): Record<string, unknown> | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  if (!countedUnique(text, value) && hasDuplicateMemberName(text)) return null;
  return value as Record<string, unknown>;
}
