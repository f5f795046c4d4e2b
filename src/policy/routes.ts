/**
 * The route table: method + path pattern → what the route requires. Compiled once per policy
 * load; matching a request is a walk over pre-split segments, most specific route first.
 */
import { ConfigError } from '../errors.ts';

type Segment = { readonly literal: string } | { readonly param: string };

export type RouteRequirement =
  | { readonly kind: 'public' }
  | { readonly kind: 'authenticated' }
  | {
      readonly kind: 'all' | 'any';
      readonly permissions: readonly PermissionTemplate[];
      /** Some permission has `{param}` holes, so filled values need checking per request. */
      readonly filled: boolean;
    };

/** A permission with `{param}` holes, pre-split so filling it does no parsing per request. */
export interface PermissionTemplate {
  readonly text: string;
  /** Alternating literal text and parameter names: ['delete:posts:', 'id', ''] for `delete:posts:{id}`. */
  readonly parts: readonly string[];
}

export interface CompiledRoute {
  /** As written, for explain output and logs: `DELETE /posts/:id`. */
  readonly label: string;
  /** null means any method. */
  readonly methods: ReadonlySet<string> | null;
  readonly segments: readonly Segment[];
  /** A trailing `*`: matches zero or more further segments. */
  readonly rest: boolean;
  readonly requirement: RouteRequirement;
  readonly index: number;
  /** Answers 503 rather than act on grants the revocation feed could not confirm recently. */
  readonly strict: boolean;
  /** false: delegated callers are refused here. */
  readonly delegated: boolean;
}

export interface RouteMatch {
  readonly route: CompiledRoute;
  readonly params: Readonly<Record<string, string>>;
}

/** Why a request path cannot be matched safely. */
export type PathProblem = 'malformed';

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

export interface RouteInput {
  readonly method?: string | readonly string[];
  readonly path: string;
  readonly requirement: RouteRequirement;
  readonly strict?: boolean;
  /** false refuses delegated callers; default true. */
  readonly delegated?: boolean;
}

export function compileRoute(input: RouteInput, index: number, field: string): CompiledRoute {
  const { path } = input;
  if (!path.startsWith('/')) {
    throw new ConfigError(`${field}.path`, 'expected a path starting with /, like /posts/:id');
  }
  const raw = path === '/' ? [] : path.slice(1).split('/');
  if (raw.at(-1) === '') raw.pop(); // a trailing slash is the same route
  const segments: Segment[] = [];
  let rest = false;
  const names = new Set<string>();
  raw.forEach((part, i) => {
    const at = `${field}.path`;
    if (part === '*') {
      if (i !== raw.length - 1) throw new ConfigError(at, '* is only allowed as the last segment');
      rest = true;
    } else if (part.startsWith(':')) {
      const name = part.slice(1);
      if (!PARAM_NAME.test(name)) {
        throw new ConfigError(at, `parameter "${part}" must be :name with letters, digits or _`);
      }
      if (names.has(name)) throw new ConfigError(at, `parameter :${name} appears twice`);
      names.add(name);
      segments.push({ param: name });
    } else if (splitPath(`/${part}`)?.[0] !== part || part.includes('*')) {
      // A literal must be what a request segment decodes to, or it could never match and a
      // broader route would quietly take its requests.
      throw new ConfigError(
        at,
        `segment "${part}" can never match a request (empty, dot, *, %, ;, or non-ASCII that normalises)`,
      );
    } else {
      segments.push({ literal: part });
    }
  });

  const methods =
    input.method === undefined || input.method === '*'
      ? null
      : new Set(typeof input.method === 'string' ? [input.method] : input.method);
  if (methods?.has('*')) throw new ConfigError(`${field}.method`, 'use * alone, not in a list');

  const requirement = input.requirement;
  if (requirement.kind === 'all' || requirement.kind === 'any') {
    for (const template of requirement.permissions) {
      for (let p = 1; p < template.parts.length; p += 2) {
        if (!names.has(template.parts[p]!)) {
          throw new ConfigError(
            `${field}.${requirement.kind === 'all' ? 'require' : 'anyOf'}`,
            `{${template.parts[p]}} in ${template.text} is not a parameter of ${path}`,
          );
        }
      }
    }
  }
  const methodLabel = methods ? [...methods].join(',') : '*';
  const strict = input.strict === true;
  if (strict && requirement.kind === 'public') {
    throw new ConfigError(
      `${field}.strict`,
      'expected no strict on a public route (it has no grants to keep fresh)',
    );
  }
  const delegated = input.delegated ?? true;
  if (!delegated && requirement.kind === 'public') {
    // A public route lets every request through, delegated or not: `delegated: false` there
    // would look like a refusal nothing enforces.
    throw new ConfigError(
      `${field}.delegated`,
      'expected no delegated: false on a public route (it lets every request through)',
    );
  }
  return {
    label: `${methodLabel} ${path}`,
    methods,
    segments,
    rest,
    requirement,
    index,
    strict,
    delegated,
  };
}

/** `delete:posts:{id}` → parts. Parameter names follow the route's `:name` rule. */
export function parseTemplate(text: string, field: string): PermissionTemplate {
  const parts: string[] = [];
  const re = /\{([^{}]*)\}/g;
  let last = 0;
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (!PARAM_NAME.test(m[1]!)) throw new ConfigError(field, `bad parameter {${m[1]}}`);
    parts.push(text.slice(last, m.index), m[1]!);
    last = m.index + m[0].length;
  }
  parts.push(text.slice(last));
  if (parts.some((p, i) => i % 2 === 0 && (p.includes('{') || p.includes('}')))) {
    throw new ConfigError(field, `unbalanced braces in ${text}`);
  }
  // A hole fills a whole segment: `read:doc-{id}` or `{a}.{b}` would let two different paths
  // produce the same permission.
  for (let i = 1; i < parts.length; i += 2) {
    const before = parts[i - 1]!;
    const after = parts[i + 1]!;
    const startsSegment = i === 1 ? before === '' || before.endsWith(':') : before.endsWith(':');
    const endsSegment =
      i === parts.length - 2 ? after === '' || after.startsWith(':') : after.startsWith(':');
    if (!startsSegment || !endsSegment) {
      throw new ConfigError(
        field,
        `{${parts[i]}} in ${text} must be a whole segment, like delete:posts:{id}`,
      );
    }
  }
  return { text, parts };
}

/** Characters a filled value may keep; everything else is percent-encoded so a value is one segment. */
const SAFE_VALUE = /^[A-Za-z0-9._~@+-]+$/;

/**
 * Fills a template from path parameters. A value is percent-encoded (`:` `*` `%` `/` included) so
 * that `/posts/a:b` can never become the two-segment permission `delete:posts:a:b`.
 */
export function fillTemplate(
  template: PermissionTemplate,
  params: Readonly<Record<string, string>>,
): string {
  if (template.parts.length === 1) return template.text;
  let out = template.parts[0]!;
  for (let i = 1; i < template.parts.length; i += 2) {
    const value = params[template.parts[i]!] ?? '';
    out += SAFE_VALUE.test(value) ? value : encodeValue(value);
    out += template.parts[i + 1]!;
  }
  return out;
}

function encodeValue(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/**
 * Orders routes so the first match is the most specific: compared segment by segment, a literal
 * beats a parameter, which beats a trailing `*`; at equal paths a route naming the method beats
 * one for any method. Each route maps to a fixed rank sequence, so this is a total order.
 */
function compareSpecificity(a: CompiledRoute, b: CompiledRoute): number {
  const n = Math.max(a.segments.length, b.segments.length);
  for (let i = 0; i < n; i++) {
    const ra = rank(a, i);
    const rb = rank(b, i);
    if (ra !== rb) return rb - ra;
  }
  if (a.rest !== b.rest) return a.rest ? 1 : -1;
  if ((a.methods === null) !== (b.methods === null)) return a.methods === null ? 1 : -1;
  return a.index - b.index;
}

function rank(route: CompiledRoute, i: number): number {
  const segment = route.segments[i];
  if (segment) return 'literal' in segment ? 3 : 2;
  // Past its last segment a route either ends (and then beats a `*` that would also match the
  // same short path: `/posts` before `/posts/*`) or continues with its trailing `*`.
  return route.rest ? 1 : 4;
}

export class RouteTable {
  readonly routes: readonly CompiledRoute[];

  constructor(routes: readonly CompiledRoute[]) {
    this.routes = [...routes].sort(compareSpecificity);
    this.rejectDuplicates();
  }

  /**
   * Finds the most specific route for a method and raw (undecoded) path. A GET route also serves
   * HEAD, as HTTP servers answer HEAD with GET's headers (RFC 9110 §9.3.2).
   */
  match(method: string, rawPath: string): RouteMatch | PathProblem | null {
    const segments = splitPath(rawPath);
    if (segments === null) return 'malformed';
    const head = method === 'HEAD';
    const routes = this.routes;
    for (let i = 0; i < routes.length; i++) {
      const route = routes[i]!;
      const methods = route.methods;
      const viaGet = head && methods !== null && !methods.has('HEAD') && methods.has('GET');
      if (methods && !methods.has(method) && !viaGet) continue;
      const params = matchSegments(route, segments);
      if (!params) continue;
      if (viaGet) {
        // An explicit HEAD route of the same shape beats GET serving HEAD (HEAD requests are
        // rare enough for a scan of the rest).
        for (let j = i + 1; j < routes.length; j++) {
          const other = routes[j]!;
          if (other.methods?.has('HEAD') && sameShape(other, route))
            return { route: other, params };
        }
      }
      return { route, params };
    }
    return null;
  }

  private rejectDuplicates(): void {
    const seen = new Map<string, CompiledRoute>();
    for (const route of this.routes) {
      const shape = `${route.segments.map((s) => ('literal' in s ? s.literal : ':')).join('/')}${route.rest ? '/*' : ''}`;
      for (const method of route.methods ?? ['*']) {
        const key = `${method} ${shape}`;
        const other = seen.get(key);
        if (other) {
          throw new ConfigError(
            `policy.routes[${route.index}]`,
            `overlaps routes[${other.index}] (${other.label}); each method and path shape may appear once`,
          );
        }
        seen.set(key, route);
      }
    }
  }
}

/**
 * Same literals, parameters in the same places, same trailing `*` (parameter names aside).
 * Exported so the API Gateway policy builder lists HEAD exactly as {@link RouteTable.match} serves it.
 */
export function sameShape(a: CompiledRoute, b: CompiledRoute): boolean {
  if (a.rest !== b.rest || a.segments.length !== b.segments.length) return false;
  return a.segments.every((segment, i) => {
    const other = b.segments[i]!;
    return 'literal' in segment
      ? 'literal' in other && other.literal === segment.literal
      : 'param' in other;
  });
}

function matchSegments(
  route: CompiledRoute,
  segments: readonly string[],
): Record<string, string> | null {
  const pattern = route.segments;
  if (route.rest ? segments.length < pattern.length : segments.length !== pattern.length) {
    return null;
  }
  let params: Record<string, string> | null = null;
  for (let i = 0; i < pattern.length; i++) {
    const want = pattern[i]!;
    const got = segments[i]!;
    if ('literal' in want) {
      if (want.literal !== got) return null;
    } else {
      params ??= {};
      params[want.param] = got;
    }
  }
  return params ?? EMPTY;
}

const EMPTY: Record<string, string> = Object.freeze({}) as Record<string, string>;

/** A raw request path: printable ASCII only (RFC 3986 request-targets are percent-encoded). */
const RAW_PATH = /^[\x21-\x7E]*$/;
/** Characters no decoded segment may hold: separators, and controls some origins truncate at. */
const UNSAFE_DECODED = /[/\\;\x00-\x1F\x7F]/;

/**
 * Splits and percent-decodes a request path. Returns null for paths that an origin might resolve
 * differently from the guard:
 * - raw characters outside printable ASCII (a real HTTP request-target has none);
 * - bad percent-encoding, empty interior segments (`//`), dot segments (also encoded, `%2e%2e`);
 * - `/` `\` `;` or control characters inside a decoded segment: Tomcat and Spring strip
 *   `;params` (so `..;` acts as `..` and `/posts/42;x` as `/posts/42`), and some stacks stop at NUL;
 * - non-ASCII that Unicode NFKC normalisation changes (full-width `．．` becomes `..` on some origins).
 */
export function splitPath(rawPath: string): string[] | null {
  const q = rawPath.indexOf('?');
  const path = q === -1 ? rawPath : rawPath.slice(0, q);
  if (!path.startsWith('/') || !RAW_PATH.test(path)) return null;
  if (path === '/') return [];
  // A raw segment is printable ASCII without `/`: of the unsafe characters it can only hold `\`
  // and `;`. One search of the path settles that for every segment not percent-decoded.
  const rawSafe = path.indexOf('\\') === -1 && path.indexOf(';') === -1;
  // Split by hand: String.prototype.split costs more than the rest of this function on a short
  // path. A trailing `/` adds no segment; an empty interior segment is refused below.
  const parts: string[] = [];
  let start = 1;
  for (let slash = path.indexOf('/', 1); slash !== -1; slash = path.indexOf('/', start)) {
    parts.push(path.slice(start, slash));
    start = slash + 1;
  }
  if (start < path.length) parts.push(path.slice(start));
  for (let i = 0; i < parts.length; i++) {
    let part = parts[i]!;
    let checked = rawSafe;
    if (part.includes('%')) {
      try {
        part = decodeURIComponent(part);
      } catch {
        return null;
      }
      if (!isAscii(part) && part.normalize('NFKC') !== part) return null;
      parts[i] = part;
      checked = false;
    }
    if (part === '' || part === '.' || part === '..' || (!checked && UNSAFE_DECODED.test(part))) {
      return null;
    }
  }
  return parts;
}

function isAscii(text: string): boolean {
  for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) > 0x7e) return false;
  return true;
}
