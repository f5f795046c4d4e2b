/**
 * Principal-mode policies: every route this principal may call, as IAM resource patterns that
 * stay correct when API Gateway caches the answer per token and evaluates it against the
 * caller's later routes (docs/aws.md, "Modes and caching").
 *
 * Rules, each chosen so a cached policy can only be narrower than the uncached authorizer:
 * - a route is allowed for every value of its parameters only when an unconditional grant with
 *   `*` at each parameter covers it and no deny (conditional or not) could touch any value of
 *   any of its permissions (the core denies when any `anyOf` alternative is denied);
 * - otherwise only the specific items named by unconditional grants are listed, exactly;
 * - grants with conditions (ip, time, claims, country) or expiring within the cache window
 *   never widen the list: their routes are left out (a deliberate, documented false deny);
 * - a path parameter becomes `?*`, which in IAM also spans `/`, so each wildcard allow carries
 *   Deny patterns for the paths it over-matches (also below a trailing `*` when a literal follows
 *   the parameter: `GET/orgs/?*​/repos/*` matches /orgs/x/admin/repos/…) and for more specific
 *   routes that are not allowed (a route fixed to the caller's tenant counts as not allowed: it
 *   denies the other tenants); a Deny that would remove an allowed route instead drops that
 *   allow (false deny);
 * - the core ignores one trailing slash (`/account/` is `/account`), so every Deny that ends in
 *   a literal is also emitted with a trailing `/`;
 * - paths the core refuses (malformed, or a filled parameter too long for a permission) are
 *   denied whenever an allow could match one; a fixed tenant or listed item value must be a safe
 *   path segment (never `.` or `..`); a GET route is not listed for HEAD when an explicit HEAD
 *   route of the same shape answers HEAD;
 * - no Resource may pass API Gateway's 512-character ARN limit: an allow that is too long, or
 *   that needs a Deny that is too long, is left out (never a Deny dropped, never a longer one).
 */
import {
  MAX_PERMISSION_LENGTH,
  MAX_SEGMENT_LENGTH,
  permissionMatches,
} from '../permissions/grammar.ts';
import type { PermissionEntry, PermissionSet } from '../permissions/permission-set.ts';
import type { CompiledRoute, PermissionTemplate, RouteTable } from '../policy/routes.ts';
import { fillTemplate, sameShape } from '../policy/routes.ts';
import { iamMatch, iamTokens, intersects, literalTokens, type Token } from './iam-glob.ts';

/** Verbs an any-method route (`method: *`) is listed for; other verbs are denied from cache. */
export const ANY_METHOD_VERBS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];

/**
 * Paths the core refuses as malformed (400, `splitPath` in src/policy/routes.ts) that an IAM
 * wildcard could still match. Denied for every verb whenever the policy holds a wildcard allow.
 *
 * REST API method ARNs are taken to carry the path as the client sent it (percent-encoded, like
 * the REST event's `path`; docs/aws.md, "Paths in method ARNs"), so one pattern, `*%*`, covers
 * every escape the core refuses: `%3B`,
 * `%00`-`%1F`, `%7F`, bad escapes (`%zz`, a lone `%`, overlong `%C0%AE`), full-width dots
 * (`%EF%BC%8E`), encoded dots, slashes and backslashes. It also denies legitimate escapes
 * (`%20`, `%41`, `caf%C3%A9`): a documented false deny. Raw `;` (Tomcat's `..;`), `\`, `#`
 * and dot or empty segments are denied in their raw form, which is also their decoded form.
 */
export const MALFORMED_PATTERNS = [
  '*/..',
  '*/../*',
  '*/.',
  '*/./*',
  '*//*',
  '*%*',
  '*;*',
  '*\\*',
  '*#*',
];

/**
 * Longest path parameter value listed by a wildcard when the route fills it into a permission.
 * A filled segment may hold at most 128 characters (src/permissions/grammar.ts) and a value is
 * percent-encoded when it holds anything outside `[A-Za-z0-9._~@+-]`, growing up to three
 * times (`!` becomes `%21`): 42 characters always fit, 43 may not. Longer values are denied
 * from the cache (a documented false deny for 43 to 128 character ids).
 */
export const FILLED_PARAM_MAX = Math.floor(MAX_SEGMENT_LENGTH / 3);

/**
 * Longest ARN one Resource of an API Gateway policy may hold, characters. What API Gateway does
 * with a longer one is not documented; a Deny it ignored would open what the Deny closes.
 */
export const MAX_RESOURCE_LENGTH = 512;

const SAFE_VALUE = /^[A-Za-z0-9._~@+-]+$/;

/**
 * A value that, written into a path, is one segment the core accepts and matches as itself:
 * unreserved characters only (no IAM wildcard, no `%`, no `/`) and not a dot segment, which the
 * core refuses as malformed (a tenant `..` must never list `GET/t/../reports`).
 */
function safeSegment(value: string): boolean {
  return SAFE_VALUE.test(value) && value !== '.' && value !== '..';
}
const HOLE = '\u0000';

export interface PrincipalPolicyInput {
  readonly routes: RouteTable;
  readonly set: PermissionSet;
  /** The principal's tenant, for routes whose tenant path parameter must equal it. */
  readonly tenant: string | undefined;
  readonly tenantParam: string | undefined;
  /** Whether the principal holds a valid token (false: only public routes are listed). */
  readonly authenticated: boolean;
  /**
   * A delegated principal (Gatehouse delegation token): routes with `delegated: false` are left
   * out, and `set` must already be narrowed to the token's scope and ceilings. Default false.
   */
  readonly delegated?: boolean;
  /** Decision time, ms. */
  readonly now: number;
  /** How long API Gateway may reuse the answer, seconds (the authorizer's cache TTL). */
  readonly windowSeconds: number;
  /**
   * Longest resource pattern the policy may hold, characters: {@link MAX_RESOURCE_LENGTH} minus
   * the ARN prefix (`arn:…:api/stage/`) the patterns are appended to.
   */
  readonly maxResourceLength: number;
}

/** Resource patterns relative to `arn:…:api/stage/`: `GET/posts/?*`. */
export interface PrincipalStatements {
  readonly allow: readonly string[];
  readonly deny: readonly string[];
  /** `GET /drafts (conditional)`: routes left out on purpose, for the cold-start/debug log. */
  readonly omitted: readonly string[];
}

type Seg = { readonly literal: string } | { readonly param: string; readonly fixed?: string };

interface Shape {
  readonly route: CompiledRoute;
  readonly verb: string;
  readonly segs: readonly Seg[];
  readonly rest: boolean;
  /** Position in match order (most specific first). */
  readonly order: number;
}

type Verdict =
  | { readonly kind: 'all' }
  | { readonly kind: 'items'; readonly paths: readonly string[] }
  | { readonly kind: 'none'; readonly why: string };

function verbsOf(route: CompiledRoute): string[] {
  if (route.methods === null) return ANY_METHOD_VERBS;
  const verbs = [...route.methods];
  if (route.methods.has('GET') && !route.methods.has('HEAD')) verbs.push('HEAD');
  return verbs;
}

function applies(route: CompiledRoute, verb: string): boolean {
  const m = route.methods;
  return m === null || m.has(verb) || (verb === 'HEAD' && m.has('GET'));
}

/**
 * Whether a GET route's HEAD requests go to an explicit HEAD route of the same shape instead
 * (RouteTable.match prefers it), so the GET route must not be listed for HEAD.
 */
function headTakenOver(route: CompiledRoute, verb: string, table: RouteTable): boolean {
  const m = route.methods;
  if (verb !== 'HEAD' || m === null || m.has('HEAD') || !m.has('GET')) return false;
  return table.routes.some((other) => other.methods?.has('HEAD') && sameShape(other, route));
}

/** Whether some path matches both route shapes (ignoring more specific routes). */
function shapesIntersect(a: Shape, b: Shape): boolean {
  return intersects(shapeTokens(a), shapeTokens(b));
}

function shapeTokens(shape: Shape): Token[] {
  const out: Token[] = [{ t: 'char', c: '/' }];
  shape.segs.forEach((seg, i) => {
    if (i > 0) out.push({ t: 'char', c: '/' });
    if ('literal' in seg) out.push(...literalTokens(seg.literal));
    else if (seg.fixed !== undefined) out.push(...literalTokens(seg.fixed));
    else out.push({ t: 'seg' });
  });
  if (shape.rest) {
    if (shape.segs.length === 0) {
      // `/*` matches `/` and every deeper path.
      return [{ t: 'char', c: '/' }, { t: 'star' }];
    }
    out.push({ t: 'segs' });
  }
  return out;
}

/** `?*` per free parameter; `spanAt` makes that parameter `*​/*` (its over-match). */
function globPath(shape: Shape, spanAt?: number): string {
  const parts = shape.segs.map((seg, i) => {
    if ('literal' in seg) return seg.literal;
    if (seg.fixed !== undefined) return seg.fixed;
    if (i === spanAt) return '*/*';
    return spanAt === undefined ? '?*' : '*';
  });
  return `/${parts.join('/')}`;
}

function resourcePatterns(shape: Shape): string[] {
  const base = globPath(shape);
  if (!shape.rest) return [`${shape.verb}${base}`];
  if (shape.segs.length === 0) return [`${shape.verb}/*`];
  return [`${shape.verb}${base}`, `${shape.verb}${base}/*`];
}

/**
 * Denies for the paths a wildcard allow matches but its route does not answer with allow:
 * a parameter spanning `/` (`GET/posts/*​/*` next to `GET/posts/?*`), and a filled parameter
 * longer than {@link FILLED_PARAM_MAX} (the core refuses a permission it would make too long).
 *
 * Below a trailing `*` a spanning parameter is harmless when only parameters follow it (the
 * extra segments are the route's own rest), but not when a literal follows: `GET/orgs/?*​/repos`
 * also matches /orgs/x/admin/repos, which the route does not answer. Those spans are denied
 * too; they also deny the route's own paths in which the literal comes back deeper
 * (/orgs/x/repos/y/repos), a documented false deny.
 */
function overMatchPatterns(shape: Shape): string[] {
  return [...spanPatterns(shape), ...filledPatterns(shape)];
}

/** The paths where a free parameter's `?*` spans `/` onto paths the route does not answer. */
function spanPatterns(shape: Shape): string[] {
  const out: string[] = [];
  shape.segs.forEach((seg, i) => {
    if (!('param' in seg) || seg.fixed !== undefined) return;
    if (!shape.rest) {
      out.push(`${shape.verb}${globPath(shape, i)}`);
    } else if (shape.segs.slice(i + 1).some((s) => !('param' in s) || s.fixed !== undefined)) {
      const span = `${shape.verb}${globPath(shape, i)}`;
      out.push(span, `${span}/*`);
    }
  });
  return out;
}

/** The route's own paths whose filled parameter is too long for a permission (the core: 400). */
function filledPatterns(shape: Shape): string[] {
  const out: string[] = [];
  const filled = filledParams(shape.route);
  shape.segs.forEach((seg, i) => {
    if (!('param' in seg) || seg.fixed !== undefined) return;
    if (filled.has(seg.param)) {
      const parts = shape.segs.map((s, k) => {
        if ('literal' in s) return s.literal;
        if (s.fixed !== undefined) return s.fixed;
        return k === i ? `${'?'.repeat(FILLED_PARAM_MAX + 1)}*` : '*';
      });
      out.push(`${shape.verb}/${parts.join('/')}${shape.rest ? '*' : ''}`);
    }
  });
  return out;
}

/**
 * The core treats `/account/` as `/account` (splitPath drops one trailing slash), so a Deny
 * ending in a literal must also deny the same path with a trailing `/`. One ending in `*`
 * already does.
 */
function withTrailingSlash(patterns: readonly string[]): string[] {
  return patterns.flatMap((p) => (p.endsWith('*') ? [p] : [p, `${p}/`]));
}

/** Parameters a route fills into its required permissions. */
function filledParams(route: CompiledRoute): Set<string> {
  const out = new Set<string>();
  const requirement = route.requirement;
  if (requirement.kind !== 'all' && requirement.kind !== 'any') return out;
  for (const t of requirement.permissions) {
    for (let i = 1; i < t.parts.length; i += 2) out.add(t.parts[i]!);
  }
  return out;
}

function iamSafeLiteral(text: string): boolean {
  return !text.includes('*') && !text.includes('?');
}

// ---------------------------------------------------------------------------------------------
// What the principal may do on one route

interface TemplateSegs {
  readonly segs: readonly ({ literal: string } | { hole: string } | { complex: true })[];
}

function templateSegs(
  template: PermissionTemplate,
  fixed: Readonly<Record<string, string>>,
): TemplateSegs {
  let text = template.parts[0]!;
  for (let i = 1; i < template.parts.length; i += 2) {
    const name = template.parts[i]!;
    const value = fixed[name];
    text +=
      value !== undefined
        ? fillTemplate({ text: '', parts: ['', name, ''] }, { [name]: value })
        : `${HOLE}${name}${HOLE}`;
    text += template.parts[i + 1]!;
  }
  return {
    segs: text.split(':').map((s) => {
      if (!s.includes(HOLE)) return { literal: s };
      const m = /^\u0000([^\u0000]+)\u0000$/.exec(s);
      return m ? { hole: m[1]! } : { complex: true as const };
    }),
  };
}

/** Whether grant segments `g` match every instance of the template. */
function coversAll(g: readonly string[], t: TemplateSegs): boolean {
  return matchesTemplate(g, t, true);
}

/** Whether grant segments `g` could match some instance of the template. */
function couldMatch(g: readonly string[], t: TemplateSegs): boolean {
  return matchesTemplate(g, t, false);
}

/**
 * Grant segments against a template's segments. A literal must be met by itself or `*`; a
 * parameter (any value) is met for every value only by `*`, and for some value by anything.
 */
function matchesTemplate(g: readonly string[], t: TemplateSegs, everyValue: boolean): boolean {
  const segs = t.segs;
  for (let i = 0; i < g.length; i++) {
    const seg = g[i]!;
    if (seg === '*' && i === g.length - 1) return segs.length > i;
    if (i >= segs.length) return false;
    const ts = segs[i]!;
    if (seg === '*') continue;
    if ('literal' in ts ? seg !== ts.literal : everyValue) return false;
  }
  return g.length === segs.length;
}

/** Parameter values named by a grant for every hole of the template, or undefined. */
function bindingFrom(g: readonly string[], t: TemplateSegs): Record<string, string> | undefined {
  if (g.length !== t.segs.length) return undefined;
  const binding: Record<string, string> = {};
  for (let i = 0; i < g.length; i++) {
    const seg = g[i]!;
    const ts = t.segs[i]!;
    if ('complex' in ts) return undefined;
    if ('literal' in ts) {
      if (seg !== '*' && seg !== ts.literal) return undefined;
      continue;
    }
    if (seg === '*' || !safeSegment(seg)) return undefined;
    if (binding[ts.hole] !== undefined && binding[ts.hole] !== seg) return undefined;
    binding[ts.hole] = seg;
  }
  return binding;
}

interface Classified {
  /** Live, unconditional, not expiring within the window. */
  readonly stableAllows: readonly string[][];
  readonly denies: readonly { segs: string[]; permission: string; conditional: boolean }[];
}

function classify(
  entries: readonly PermissionEntry[],
  now: number,
  windowSeconds: number,
): Classified {
  const stableAllows: string[][] = [];
  const denies: { segs: string[]; permission: string; conditional: boolean }[] = [];
  const nowSeconds = now / 1000;
  for (const entry of entries) {
    if (entry.expiresAt !== undefined && entry.expiresAt <= nowSeconds) continue;
    const segs = entry.permission === '*' ? ['*'] : entry.permission.split(':');
    if (entry.effect === 'deny') {
      // A deny that expires inside the window keeps denying from the cache: narrower, fine.
      denies.push({ segs, permission: entry.permission, conditional: entry.when !== undefined });
    } else if (
      entry.when === undefined &&
      (entry.expiresAt === undefined || entry.expiresAt > nowSeconds + windowSeconds)
    ) {
      stableAllows.push(segs);
    }
  }
  return { stableAllows, denies };
}

/**
 * Stable, cache-safe answer for one concrete list of required permissions. Every permission is
 * checked against every deny first: the core denies when any alternative is denied, also in
 * `any` mode (decide.ts, authorize), so one touched alternative makes the item unsafe to list.
 */
function concreteAllowed(required: readonly string[], mode: 'all' | 'any', c: Classified): boolean {
  if (required.length === 0) return false;
  for (const permission of required) {
    // Any matching deny, conditional or not, makes the item unsafe to list.
    if (c.denies.some((deny) => permissionMatches(deny.permission, permission))) return false;
  }
  const allowed = (p: string) => c.stableAllows.some((g) => permissionMatches(g.join(':'), p));
  return mode === 'all' ? required.every(allowed) : required.some(allowed);
}

/**
 * Whether every filled template stays a valid permission for every value a wildcard lists
 * (values of at most {@link FILLED_PARAM_MAX} characters, see overMatchPatterns).
 */
function withinPermissionLimits(
  templates: readonly PermissionTemplate[],
  fixed: Readonly<Record<string, string>>,
): boolean {
  return templates.every((t) => {
    let length = 0;
    for (let i = 0; i < t.parts.length; i++) {
      const part = t.parts[i]!;
      if (i % 2 === 0) length += part.length;
      else {
        const n =
          fixed[part] !== undefined
            ? fillTemplate({ text: '', parts: ['', part, ''] }, fixed).length
            : 3 * FILLED_PARAM_MAX;
        // A fixed value (the caller's tenant) is one permission segment: at most 128 characters.
        if (n > MAX_SEGMENT_LENGTH) return false;
        length += n;
      }
    }
    return length <= MAX_PERMISSION_LENGTH;
  });
}

function judge(shape: Shape, input: PrincipalPolicyInput, c: Classified): Verdict {
  const route = shape.route;
  const requirement = route.requirement;
  if (requirement.kind === 'public') return { kind: 'all' };
  if (!input.authenticated) return { kind: 'none', why: 'needs a token' };
  if (input.delegated === true && !route.delegated) {
    return { kind: 'none', why: 'refuses delegated callers' };
  }
  const fixed: Record<string, string> = {};
  for (const seg of shape.segs)
    if ('param' in seg && seg.fixed !== undefined) fixed[seg.param] = seg.fixed;
  if (requirement.kind === 'authenticated') return { kind: 'all' };

  const templates = requirement.permissions.map((t) => templateSegs(t, fixed));
  const mode = requirement.kind;
  const denyTouches = (t: TemplateSegs) => c.denies.some((d) => couldMatch(d.segs, t));
  const covered = (t: TemplateSegs) => c.stableAllows.some((g) => coversAll(g, t));

  // The core checks every alternative and denies when any one is denied, whatever the mode:
  // a wildcard is listed only when no deny could touch any template for any value.
  if (!templates.some(denyTouches) && withinPermissionLimits(requirement.permissions, fixed)) {
    if (mode === 'all' ? templates.every(covered) : templates.some(covered)) return { kind: 'all' };
  }

  // Specific items: parameter values named by unconditional grants, checked one by one.
  const freeParams = shape.segs
    .filter((s) => 'param' in s && s.fixed === undefined)
    .map((s) => (s as { param: string }).param);
  if (shape.rest) return { kind: 'none', why: 'not granted for every path below it' };
  const paths = new Set<string>();
  for (const t of templates) {
    for (const g of c.stableAllows) {
      const binding = bindingFrom(g, t);
      if (binding === undefined) continue;
      if (!freeParams.every((p) => binding[p] !== undefined)) continue;
      const params = { ...fixed, ...binding };
      const required = requirement.permissions.map((tpl) => fillTemplate(tpl, params));
      if (!concreteAllowed(required, mode, c)) continue;
      const path = `/${shape.segs
        .map((s) => ('literal' in s ? s.literal : (params[s.param] ?? '')))
        .join('/')}`;
      const match = input.routes.match(shape.verb, path);
      // A more specific route would answer for this path: it is that route's business.
      if (match === null || match === 'malformed' || match.route !== route) continue;
      paths.add(`${shape.verb}${path}`);
    }
  }
  if (paths.size > 0) return { kind: 'items', paths: [...paths] };
  return { kind: 'none', why: 'not granted unconditionally' };
}

// ---------------------------------------------------------------------------------------------

interface Allowed {
  readonly shape: Shape;
  readonly kind: 'all' | 'item';
  /** Resource patterns (glob) or one exact resource. */
  readonly resources: readonly string[];
  readonly label: string;
}

function shapeFor(route: CompiledRoute, verb: string, input: PrincipalPolicyInput): Shape | null {
  const segs: Seg[] = [];
  for (const seg of route.segments) {
    if ('literal' in seg) {
      if (!iamSafeLiteral(seg.literal)) return null;
      segs.push(seg);
    } else if (seg.param === input.tenantParam && route.requirement.kind !== 'public') {
      // Routes naming a tenant answer only for the caller's own tenant.
      const tenant = input.tenant;
      if (tenant === undefined || !safeSegment(tenant)) return null;
      segs.push({ param: seg.param, fixed: tenant });
    } else {
      segs.push({ param: seg.param });
    }
  }
  return { route, verb, segs, rest: route.rest, order: input.routes.routes.indexOf(route) };
}

/** Compiles the allow and deny patterns for one principal. Pure; call once per record. */
export function principalStatements(input: PrincipalPolicyInput): PrincipalStatements {
  const c = classify(input.set.entries(), input.now, input.windowSeconds);
  const omitted: string[] = [];
  const verbs = new Set<string>();
  for (const route of input.routes.routes) for (const v of verbsOf(route)) verbs.add(v);

  // Per verb: the routes in match order, each with its verdict.
  const perVerb: { verb: string; shapes: Shape[]; verdicts: Verdict[] }[] = [];
  for (const verb of verbs) {
    const shapes: Shape[] = [];
    const verdicts: Verdict[] = [];
    for (const route of input.routes.routes) {
      if (!applies(route, verb) || headTakenOver(route, verb, input.routes)) continue;
      const shape = shapeFor(route, verb, input);
      if (shape === null) {
        // Not representable (a literal holding * or ?, or a foreign tenant): deny its paths.
        const raw: Shape = {
          route,
          verb,
          segs: route.segments.map((s) => ('literal' in s ? s : { param: s.param })),
          rest: route.rest,
          order: input.routes.routes.indexOf(route),
        };
        shapes.push(raw);
        verdicts.push({ kind: 'none', why: 'not representable' });
        continue;
      }
      shapes.push(shape);
      verdicts.push(judge(shape, input, c));
    }
    perVerb.push({ verb, shapes, verdicts });
  }

  let dropped = new Map<string, string>();
  for (let round = 0; round < 50; round++) {
    const { allow, deny, conflicts } = assemble(perVerb, dropped, input.maxResourceLength);
    if (conflicts.size === 0) {
      for (const { verb, shapes, verdicts } of perVerb) {
        shapes.forEach((shape, i) => {
          const v = verdicts[i]!;
          if (
            v.kind === 'none' &&
            shape.route.requirement.kind !== 'public' &&
            input.authenticated
          ) {
            omitted.push(`${verb} ${routePath(shape.route)} (${v.why})`);
          }
        });
      }
      for (const [key, why] of dropped) omitted.push(`${key} (${why})`);
      return finish(allow, deny, omitted, input.maxResourceLength);
    }
    dropped = new Map([...dropped, ...conflicts]);
  }
  // Cannot settle: allow nothing rather than guess.
  return { allow: [], deny: [], omitted: ['every route (policy did not settle)'] };
}

function routePath(route: CompiledRoute): string {
  return route.label.slice(route.label.indexOf(' ') + 1);
}

const TOO_LONG = `a resource it needs is longer than ${MAX_RESOURCE_LENGTH} characters`;

function assemble(
  perVerb: readonly { verb: string; shapes: Shape[]; verdicts: Verdict[] }[],
  dropped: ReadonlyMap<string, string>,
  maxLength: number,
): { allow: string[]; deny: string[]; conflicts: Map<string, string> } {
  const allowed: Allowed[] = [];
  /** `owner`: the allow that needs the Deny (dropped with it when the Deny cannot be written). */
  const denies: { pattern: string; from: Shape; over: boolean; owner: string }[] = [];
  const conflicts = new Map<string, string>();
  for (const { shapes, verdicts } of perVerb) {
    shapes.forEach((shape, i) => {
      const v = verdicts[i]!;
      if (v.kind === 'all') {
        const label = `${shape.verb} ${routePath(shape.route)}`;
        if (dropped.has(label)) return;
        const resources = resourcePatterns(shape);
        if (resources.some((r) => r.length > maxLength)) conflicts.set(label, TOO_LONG);
        allowed.push({ shape, kind: 'all', resources, label });
        for (const pattern of withTrailingSlash(overMatchPatterns(shape))) {
          denies.push({ pattern, from: shape, over: true, owner: label });
        }
        // More specific routes inside this one that are not wholly allowed are carved out. A
        // route fixed to the caller's tenant is allowed for that tenant only: the core sends
        // every other tenant's paths to it too (and denies them), so it is carved out as well;
        // the conflict pass below then drops its own allow (a documented false deny). A wholly
        // allowed route that was dropped is carved out too: its own Denies (filled parameters
        // too long for a permission) leave with it, and this allow would still reach its paths.
        for (let j = 0; j < i; j++) {
          const other = shapes[j]!;
          const otherLabel = `${other.verb} ${routePath(other.route)}`;
          if (verdicts[j]!.kind === 'all' && !hasFixed(other) && !dropped.has(otherLabel)) continue;
          const generic: Shape = {
            ...other,
            segs: other.segs.map((s) => ('literal' in s ? s : { param: s.param })),
          };
          // The core sends every tenant's paths to a tenant route: intersect its generic shape.
          if (!shapesIntersect(generic, shape)) continue;
          for (const pattern of withTrailingSlash(resourcePatterns(generic))) {
            denies.push({ pattern, from: other, over: false, owner: label });
          }
        }
      } else if (v.kind === 'items') {
        for (const path of v.paths) {
          if (dropped.has(path)) continue;
          if (path.length > maxLength) conflicts.set(path, TOO_LONG);
          allowed.push({ shape, kind: 'item', resources: [path], label: path });
        }
      }
    });
  }

  const overlap = 'a deny for another route overlaps it';
  for (const d of denies) {
    // A Deny API Gateway may not apply is no Deny: leave out the allow that needs it instead.
    if (d.pattern.length > maxLength) {
      conflicts.set(d.owner, TOO_LONG);
      continue;
    }
    // A deny must never remove a path that one of the allowed routes answers with allow.
    const dTokens = iamTokens(d.pattern);
    for (const a of allowed) {
      if (a.shape.verb !== d.from.verb || conflicts.has(a.label)) continue;
      if (a.kind === 'item') {
        if (iamMatch(d.pattern, a.resources[0]!)) conflicts.set(a.label, overlap);
        continue;
      }
      if (d.over) {
        // A route's own over-match denies only paths it refuses (too-long filled values) or,
        // below a trailing `*`, its documented false denies (overMatchPatterns).
        if (a.shape !== d.from && intersects(dTokens, verbTokens(a.shape)))
          conflicts.set(a.label, overlap);
        continue;
      }
      if (d.from.order < a.shape.order) {
        // d's route answers first wherever the two shapes meet (its too-long values included:
        // they are its own paths); only its spans onto other paths can hurt.
        const over = spanPatterns(d.from);
        if (over.some((p) => intersects(iamTokens(p), verbTokens(a.shape))))
          conflicts.set(a.label, overlap);
      } else if (intersects(dTokens, verbTokens(a.shape))) {
        conflicts.set(a.label, overlap);
      }
    }
  }
  const allow = allowed.flatMap((a) => a.resources);
  const deny = denies.map((d) => d.pattern);
  return { allow, deny, conflicts };
}

function hasFixed(shape: Shape): boolean {
  return shape.segs.some((s) => 'param' in s && s.fixed !== undefined);
}

function verbTokens(shape: Shape): Token[] {
  return [...literalTokens(shape.verb), ...shapeTokens(shape)];
}

function finish(
  allow: string[],
  deny: string[],
  omitted: string[],
  maxLength: number,
): PrincipalStatements {
  // Compress: drop exact resources a wildcard allow already covers; keep denies that matter.
  const globs = allow.filter((a) => a.includes('*') || a.includes('?'));
  const exact = allow.filter((a) => !globs.includes(a) && !globs.some((g) => iamMatch(g, a)));
  const allowOut = [...new Set([...globs, ...exact])];
  const allowTokens = allowOut.map(iamTokens);
  // Malformed paths are denied wherever an allow, wildcard or exact, could match one.
  const denyOut = [...new Set([...deny, ...MALFORMED_PATTERNS])].filter((d) =>
    allowTokens.some((a) => intersects(iamTokens(d), a)),
  );
  // assemble left out every allow whose own Deny is too long; only an ARN prefix too long for
  // the malformed-path Denies gets here, and then nothing is listed.
  if (denyOut.some((d) => d.length > maxLength) || allowOut.some((a) => a.length > maxLength)) {
    return { allow: [], deny: [], omitted: [`every route (${TOO_LONG})`] };
  }
  return { allow: allowOut, deny: denyOut, omitted };
}
