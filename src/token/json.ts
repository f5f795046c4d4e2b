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

/** Parses `text` as a JSON object without duplicate member names; null for anything else. */
export function parseJsonObject(text: string): Record<string, unknown> | null {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return null;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  if (hasDuplicateMemberName(text)) return null;
  return value as Record<string, unknown>;
}
