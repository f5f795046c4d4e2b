/**
 * IAM resource patterns as API Gateway evaluates them against a method ARN: `*` matches any run
 * of characters (including `/`), `?` exactly one character. Here they are compared with route
 * shapes (`[^/]+` per path parameter) so the principal-mode policy builder can prove that a Deny
 * it adds never removes a route it means to allow.
 *
 * Patterns become small NFAs; intersection is a product search. Every pattern is short (one
 * route), so this runs once per compiled principal policy, never per request.
 */

/** One step of a pattern. */
export type Token =
  | { readonly t: 'char'; readonly c: string }
  /** IAM `?`: exactly one character. */
  | { readonly t: 'any' }
  /** IAM `*`: zero or more characters. */
  | { readonly t: 'star' }
  /** One path segment: one or more characters other than `/`. */
  | { readonly t: 'seg' }
  /** A trailing `*` route: zero or more further `/segment`s. */
  | { readonly t: 'segs' };

type Label =
  | { readonly k: 'char'; readonly c: string }
  | { readonly k: 'any' }
  | { readonly k: 'nonslash' };

interface Nfa {
  readonly edges: Map<number, { label: Label; to: number }[]>;
  readonly eps: Map<number, number[]>;
  readonly start: number;
  readonly final: number;
}

/** Tokens of an IAM pattern string. */
export function iamTokens(pattern: string): Token[] {
  const out: Token[] = [];
  for (const c of pattern) {
    if (c === '*') out.push({ t: 'star' });
    else if (c === '?') out.push({ t: 'any' });
    else out.push({ t: 'char', c });
  }
  return out;
}

/** Tokens for a literal string. */
export function literalTokens(text: string): Token[] {
  return [...text].map((c) => ({ t: 'char', c }) as const);
}

function build(tokens: readonly Token[]): Nfa {
  const edges = new Map<number, { label: Label; to: number }[]>();
  const eps = new Map<number, number[]>();
  let next = tokens.length + 1;
  const edge = (from: number, label: Label, to: number) => {
    const list = edges.get(from) ?? [];
    edges.set(from, list);
    list.push({ label, to });
  };
  const epsilon = (from: number, to: number) => {
    const list = eps.get(from) ?? [];
    eps.set(from, list);
    list.push(to);
  };
  tokens.forEach((token, s) => {
    switch (token.t) {
      case 'char':
        edge(s, { k: 'char', c: token.c }, s + 1);
        break;
      case 'any':
        edge(s, { k: 'any' }, s + 1);
        break;
      case 'star':
        edge(s, { k: 'any' }, s);
        epsilon(s, s + 1);
        break;
      case 'seg': {
        const inner = next++;
        edge(s, { k: 'nonslash' }, inner);
        edge(inner, { k: 'nonslash' }, inner);
        epsilon(inner, s + 1);
        break;
      }
      case 'segs': {
        const slash = next++;
        const inner = next++;
        epsilon(s, s + 1);
        edge(s, { k: 'char', c: '/' }, slash);
        edge(slash, { k: 'nonslash' }, inner);
        edge(inner, { k: 'nonslash' }, inner);
        epsilon(inner, s);
        break;
      }
    }
  });
  return { edges, eps, start: 0, final: tokens.length };
}

function closure(nfa: Nfa, states: Iterable<number>): Set<number> {
  const out = new Set<number>();
  const stack = [...states];
  while (stack.length > 0) {
    const s = stack.pop()!;
    if (out.has(s)) continue;
    out.add(s);
    for (const t of nfa.eps.get(s) ?? []) stack.push(t);
  }
  return out;
}

/** Whether one character can satisfy both labels. */
function compatible(a: Label, b: Label): boolean {
  if (a.k === 'char' && b.k === 'char') return a.c === b.c;
  if (a.k === 'char') return b.k === 'any' || a.c !== '/';
  if (b.k === 'char') return a.k === 'any' || b.c !== '/';
  return true;
}

/** Whether some string matches both token sequences. */
export function intersects(a: readonly Token[], b: readonly Token[]): boolean {
  const na = build(a);
  const nb = build(b);
  const seen = new Set<string>();
  const queue: [number, number][] = [];
  const push = (x: number, y: number) => {
    for (const cx of closure(na, [x])) {
      for (const cy of closure(nb, [y])) {
        const key = `${cx},${cy}`;
        if (!seen.has(key)) {
          seen.add(key);
          queue.push([cx, cy]);
        }
      }
    }
  };
  push(na.start, nb.start);
  while (queue.length > 0) {
    const [x, y] = queue.shift()!;
    if (x === na.final && y === nb.final) return true;
    for (const ea of na.edges.get(x) ?? []) {
      for (const eb of nb.edges.get(y) ?? []) {
        if (compatible(ea.label, eb.label)) push(ea.to, eb.to);
      }
    }
  }
  return false;
}

/** Whether `text` matches the IAM pattern (`*`, `?`). */
export function iamMatch(pattern: string, text: string): boolean {
  return intersects(iamTokens(pattern), literalTokens(text));
}
