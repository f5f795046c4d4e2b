/**
 * Generated worlds for the principal-mode cache property (cache.test.ts): a random route table
 * (tenancy, rest routes, parameters before a trailing `*`, literal children under trailing-`*`
 * routes, several parameters, GET + HEAD pairs, `anyOf`, any-method routes, broad wildcard
 * routes, literals long enough to push a Deny past API Gateway's 512-character resource limit),
 * random records (item grants and denies, conditional grants and denies, grants and role
 * assignments expiring inside the cache TTL), one user per world whose tenant is not a safe path
 * segment (`.`, `..`, `*`, `a/b`, `%61cme`), method ARNs on other stages (one with a 128-character
 * name), and request paths from a grammar that mixes well-formed values with everything the core
 * refuses (`;`, `%3B`, `%00`, `%7F`, bad escapes, overlong UTF-8, full-width dots, dot segments,
 * overlong parameters, other tenants, `?`, `#`, `//`, trailing slashes).
 *
 * Everything runs in memory (MemoryStore, HS256 tokens, a fake clock) so hundreds of worlds fit
 * in a few seconds.
 */
import * as fc from 'fast-check';
import * as jose from 'jose';
import type { AuthorizerResponse } from '../../src/aws/authorizer.ts';
import {
  type Authorizer,
  type AuthorizerEvent,
  createAuthorizer,
} from '../../src/aws/authorizer.ts';
import { Gatehouse } from '../../src/policy/decide.ts';
import { compilePolicy } from '../../src/policy/policy.ts';
import { MemoryStore } from '../../src/stores/memory.ts';
import type { Conditions, Grant, RoleAssignment, UserRecord } from '../../src/types.ts';
import {
  type Answer,
  ApiGatewayCacheModel,
  evaluatePolicy,
  uncached,
} from './apigw-cache-model.ts';
import { PREFIX } from './support.ts';

export const WORLD_TTL = 300;
const SECRET = 'generated-worlds-secret-0123456789abcdef';
const ISSUER = 'https://worlds.gatehouse.local/';
const AUDIENCE = 'https://api.gatehouse.local';
/** Fake clock origin, ms (a Wednesday, 12:00 UTC). */
export const T0 = Date.UTC(2030, 0, 2, 12, 0, 0);

type RouteDoc = Record<string, unknown>;

/**
 * Literals long enough that a Deny for their route passes 512 characters once the ARN prefix is
 * added: the filled-parameter Deny under LONG_A (the Allow itself stays under the limit with the
 * usual prefix), the carve-out of LONG_B from `/*`.
 */
const LONG_A = 'l'.repeat(420);
const LONG_B = 'k'.repeat(460);

/** Candidate routes; a world takes a random subset (method + shape pairs never repeat). */
const ROUTE_POOL: readonly RouteDoc[] = [
  { method: 'GET', path: '/health', public: true },
  { method: 'GET', path: '/me', authenticated: true },
  { method: 'GET', path: '/posts', require: ['read:posts'] },
  { method: 'GET', path: '/posts/:id', require: ['read:posts'] },
  { method: 'HEAD', path: '/posts/:id', require: ['audit:posts'] },
  { method: ['PUT', 'PATCH'], path: '/posts/:id', require: ['write:posts:{id}'] },
  { method: 'DELETE', path: '/posts/:id', anyOf: ['delete:posts:{id}', 'admin:posts'] },
  { method: 'POST', path: '/posts/:id/publish', require: ['publish:posts'] },
  { method: 'GET', path: '/files/*', require: ['read:files'] },
  { method: 'GET', path: '/files/private/*', require: ['admin:files'] },
  { method: 'GET', path: '/orgs/:org/repos/:repo', require: ['read:repos:{org}:{repo}'] },
  { method: 'GET', path: '/t/:tenant/reports', authenticated: true },
  { method: 'GET', path: '/t/:tenant/reports/:id', require: ['read:reports:{id}'] },
  { method: 'GET', path: '/t/:tenant/docs/:id', anyOf: ['read:docs:{id}', 'admin:docs'] },
  { method: 'GET', path: '/:a/:b/:c', require: ['read:pages'] },
  { method: 'GET', path: '/:a/:b', anyOf: ['read:pages', 'read:other'] },
  { method: '*', path: '/any/:x', require: ['any:thing'] },
  { method: 'GET', path: '/docs/:id', anyOf: ['read:docs:{id}', 'admin:docs'] },
  { method: 'HEAD', path: '/docs/:id', require: ['audit:docs'] },
  { method: 'POST', path: '/ops/shutdown', require: ['ops:shutdown'] },
  // A parameter before a trailing `*`, followed by a literal (IAM's `*` for :org also spans `/`,
  // so `GET/orgs/?*/repos` matches /orgs/x/admin/repos), and a deeper sibling it over-matches.
  { method: 'GET', path: '/orgs/:org/repos/*', require: ['read:repos:{org}'] },
  { method: 'GET', path: '/orgs/:org/admin/repos', require: ['admin:repos'] },
  { method: 'GET', path: '/:a/settings/*', require: ['read:pages'] },
  // A parameter right before `*` (no over-match), fixed to the caller's tenant.
  { method: 'GET', path: '/t/:tenant/files/*', authenticated: true },
  // Literal children under trailing-`*` routes (carved out; `/account/` is the same route).
  { method: 'GET', path: '/*', require: ['read:site'] },
  { method: 'GET', path: '/account', require: ['read:account'] },
  { method: 'GET', path: '/files/index', require: ['admin:files'] },
  { method: 'GET', path: `/${LONG_A}/:id`, require: ['read:long:{id}'] },
  { method: 'GET', path: `/${LONG_B}`, require: ['admin:long'] },
];

/** Permissions records draw grants and denies from. */
const PERMISSIONS = [
  '*',
  'read:*',
  'read:posts',
  'audit:posts',
  'write:posts:*',
  'write:posts:42',
  'delete:posts:*',
  'delete:posts:7',
  'delete:posts:42',
  'admin:posts',
  'publish:posts',
  'read:files',
  'admin:files',
  'read:repos:*:*',
  'read:repos:acme:*',
  'read:repos:x:y',
  'read:reports:*',
  'read:reports:1',
  'read:pages',
  'read:other',
  'any:thing',
  'read:docs:*',
  'read:docs:d1',
  'admin:docs',
  'audit:docs',
  'ops:shutdown',
  'read:repos:*',
  'read:repos:acme',
  'admin:repos',
  'read:site',
  'read:account',
  'read:long:*',
  'admin:long',
] as const;

const CONDITIONS: readonly Conditions[] = [
  { ip: ['10.0.0.0/8'] }, // unknown for TOKEN events: a grant never applies, a deny always does
  { time: { days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] } }, // holds
  { time: { days: ['sun'] } }, // fails on the fake clock's days (mostly)
  { claims: { plan: 'pro' } },
];

export interface WorldUser {
  readonly subject: string;
  readonly tenant: string | undefined;
}

/** Subjects with their token tenant (`tid`); one has no tenant at all. */
export const WORLD_USERS: readonly WorldUser[] = [
  { subject: 'u1', tenant: 'acme' },
  { subject: 'u2', tenant: 'globex' },
  { subject: 'u3', tenant: 'acme' },
  { subject: 'u4', tenant: undefined },
];

/**
 * Tenants a token may carry that are not safe path segments (`.`, `..`), or that IAM or the path
 * grammar cannot hold (`*`, `?`, `/`, `%`); each world adds one such user (dots most often).
 */
const ODD_TENANTS = ['..', '.', '..', '.', '*', '?', 'a/b', '%61cme', 'a*b', '~', 'acme/..'];
export const ODD_USERS: readonly WorldUser[] = ODD_TENANTS.map((tenant, i) => ({
  subject: `odd${i}`,
  tenant,
}));

/** A world's users: the fixed four, then its odd-tenant user if it has one. */
export function usersOf(w: World): readonly WorldUser[] {
  return w.odd === undefined ? WORLD_USERS : [...WORLD_USERS, w.odd];
}

export interface World {
  readonly tenancy: boolean;
  /** A fifth user whose tenant is not a safe path segment; its record is last in `records`. */
  readonly odd?: WorldUser;
  readonly routes: readonly RouteDoc[];
  readonly role: { readonly grants: string[]; readonly denies: string[] };
  readonly records: readonly UserRecord[];
}

/** Denies: mostly the other alternative of an `anyOf`, single items, or a whole route. */
const DENIES = [
  'admin:posts',
  'admin:docs',
  'read:other',
  'delete:posts:7',
  'delete:posts:*',
  'read:docs:d1',
  'read:reports:1',
  'read:repos:x:y',
  'write:posts:42',
  'admin:files',
  'read:pages',
  'audit:posts',
  'ops:shutdown',
  'admin:repos',
  'read:repos:acme',
  'read:account',
  'admin:long',
] as const;

const BROAD = ['*', 'read:*', 'write:posts:*', 'read:docs:*', 'delete:posts:*', 'read:pages'];

const grant = (now: number, effect: 'allow' | 'deny'): fc.Arbitrary<Grant> =>
  fc
    .record({
      // Broad grants more often, so wildcard routes get listed and over-matched.
      permission:
        effect === 'deny'
          ? fc.oneof(
              { weight: 3, arbitrary: fc.constantFrom(...DENIES) },
              { weight: 1, arbitrary: fc.constantFrom(...PERMISSIONS) },
            )
          : fc.oneof(
              { weight: 2, arbitrary: fc.constantFrom(...BROAD) },
              { weight: 3, arbitrary: fc.constantFrom(...PERMISSIONS) },
            ),
      when: fc.option(fc.constantFrom(...CONDITIONS), { freq: 4, nil: undefined }),
      // Past, inside the TTL window, just after it, or far away.
      expires: fc.option(fc.constantFrom(-60, 30, 200, WORLD_TTL + 30, 2 * WORLD_TTL, 86_400), {
        freq: 3,
        nil: undefined,
      }),
    })
    .map(({ permission, when, expires }) => ({
      permission,
      ...(when !== undefined && { when }),
      ...(expires !== undefined && { expiresAt: Math.floor(now / 1000) + expires }),
    }));

function recordFor(user: WorldUser, now: number): fc.Arbitrary<UserRecord> {
  return fc
    .record({
      grants: fc.array(grant(now, 'allow'), { maxLength: 5 }),
      denies: fc.array(grant(now, 'deny'), { maxLength: 2 }),
      role: fc.option(fc.constantFrom(-60, 100, 86_400, 0), { nil: undefined }),
    })
    .map(({ grants, denies, role }) => {
      const roles: RoleAssignment[] =
        role === undefined
          ? []
          : [
              role === 0
                ? { role: 'staff' }
                : { role: 'staff', expiresAt: Math.floor(now / 1000) + role },
            ];
      return {
        subject: user.subject,
        ...(user.tenant !== undefined && { tenant: user.tenant }),
        roles,
        grants,
        denies,
      };
    });
}

export const world: fc.Arbitrary<World> = fc
  .record({
    tenancy: fc.oneof(fc.constant(true), fc.boolean()),
    // About a third of the pool: small tables make each route's neighbours matter.
    picks: fc.array(fc.integer({ min: 0, max: 2 }), {
      minLength: ROUTE_POOL.length,
      maxLength: ROUTE_POOL.length,
    }),
    role: fc.record({
      grants: fc.subarray([...PERMISSIONS], { maxLength: 3 }),
      denies: fc.subarray([...PERMISSIONS], { maxLength: 1 }),
    }),
    records: fc.tuple(...WORLD_USERS.map((u) => recordFor(u, T0))),
    odd: fc
      .constantFrom(...ODD_USERS)
      .chain((user) => recordFor(user, T0).map((record) => ({ user, record }))),
  })
  .map(({ tenancy, picks, role, records, odd }) => {
    const routes = ROUTE_POOL.filter((_, i) => picks[i] === 0);
    return {
      tenancy,
      routes: routes.length > 0 ? routes : [ROUTE_POOL[3]!],
      role,
      records: [...records, odd.record],
      odd: odd.user,
    };
  });

/** Path parameter values the core accepts (some of them long). */
const GOOD_VALUES = [
  '1',
  '7',
  '42',
  'x',
  'y',
  'd1',
  'acme',
  'globex',
  'private',
  'reports',
  'settings',
  't',
  'a:b',
  'a'.repeat(42),
  'a'.repeat(64),
  'a'.repeat(128),
  '!'.repeat(42),
] as const;

/** Values the core refuses: splitPath (400) or an overlong filled permission (400). */
const BAD_VALUES = [
  'a'.repeat(129),
  '!'.repeat(43),
  '*'.repeat(43),
  'a;b',
  '..;',
  ';',
  '%3B',
  'x%3By',
  '%3b',
  '%00',
  'a%00b',
  '%0A',
  '%1F',
  '%7F',
  '%7f',
  '%zz',
  '%',
  '%C0%AE',
  '%EF%BC%8E%EF%BC%8E',
  '%ef%bc%8e',
  '%2e%2e',
  '%2E',
  '%2F',
  'a%2fb',
  '%5C',
  'a\\b',
  '..',
  '.',
  '',
  '#',
  'a#b',
] as const;

/** Accepted by the core, but denied from the cache on purpose (documented false denies). */
const ODD_VALUES = ['a%2Eb', 'caf%C3%A9', '%41', '%20'] as const;

function valueArb(extra: readonly string[]): fc.Arbitrary<string> {
  return fc.oneof(
    { weight: 3, arbitrary: fc.constantFrom(...GOOD_VALUES) },
    { weight: 3, arbitrary: fc.constantFrom(...BAD_VALUES, ...extra) },
    { weight: 1, arbitrary: fc.constantFrom(...ODD_VALUES) },
  );
}

/** Decoded `?` (HTTP API rawPath); never in a REST method ARN, whose path has no query. */
const QUESTION = ['?', 'a?b', '?/../ops/shutdown'];

const PATH_SHAPES = [
  '/',
  '/health',
  '/me',
  '/posts',
  '/posts/{}',
  '/posts/{}/publish',
  '/posts/{}/{}',
  '/files',
  '/files/{}',
  '/files/{}/{}/{}',
  '/files/private/{}',
  '/files/private/{}/{}',
  '/orgs/{}/repos/{}',
  '/orgs/{}/{}/repos/{}',
  '/t/{}/reports',
  '/t/{}/reports/{}',
  '/t/{}/docs/{}',
  '/{}/{}/{}',
  '/{}/{}',
  '/any/{}',
  '/docs/{}',
  '/ops/shutdown',
  '/Posts/{}',
  '/orgs/{}/repos',
  '/orgs/{}/admin/repos',
  '/orgs/{}/{}/admin/repos',
  '/orgs/{}/repos/{}/repos',
  '/{}/settings/{}',
  '/{}/{}/settings',
  '/t/{}/files/{}',
  '/account',
  '/files/index',
  `/${LONG_A}/{}`,
  `/${LONG_B}`,
] as const;

/** A request path from the grammar; `?` only where the event shape can carry it. */
export function pathArb(withQuestionMark: boolean): fc.Arbitrary<string> {
  return fc
    .record({
      shape: fc.constantFrom(...PATH_SHAPES),
      values: fc.array(valueArb(withQuestionMark ? QUESTION : []), { minLength: 3, maxLength: 3 }),
      trailing: fc.boolean(),
    })
    .map(({ shape, values: v, trailing }) => {
      let i = 0;
      const path = shape.replace(/\{\}/g, () => v[i++] ?? 'x');
      return trailing && path !== '/' ? `${path}/` : path;
    });
}

export const METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'] as const;

export interface WorldStep {
  /** Index into {@link usersOf}. */
  readonly user: number;
  readonly method: string;
  readonly path: string;
  readonly advance: number;
  /** The method ARN up to the stage (default {@link PREFIX}). */
  readonly prefix?: string;
}

/**
 * Method ARN prefixes: the usual stage, another stage, another API, and a stage with the longest
 * name API Gateway accepts (128 characters), which leaves the least room under 512.
 */
export const PREFIXES = [
  PREFIX,
  'arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/dev/',
  'arn:aws:execute-api:eu-west-1:123456789012:zyxwvu9876/prod/',
  `arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/${'s'.repeat(128)}/`,
] as const;
const prefixArb = fc.oneof(
  { weight: 4, arbitrary: fc.constant<string>(PREFIX) },
  { weight: 2, arbitrary: fc.constantFrom<string>(...PREFIXES) },
);

/**
 * Values for a tenant parameter: both real tenants, the odd users' tenants as they can appear in
 * a path, and what the core refuses.
 */
const TENANT_VALUES = [
  'acme',
  'globex',
  'acme',
  'globex',
  'acme;',
  '%61cme',
  'ACME',
  '..;',
  '.',
  '..',
  '*',
  'a*b',
  '~',
  'acme/..',
  // Tenants equal to another route's literal: the core sends such paths to the tenant route.
  'settings',
  'reports',
  't',
];

/**
 * A path aimed at one of the world's routes: its literals kept (or, rarely, changed), each
 * parameter filled from the value grammar, sometimes with extra segments or a trailing `/`.
 */
function pathFor(route: RouteDoc, values: fc.Arbitrary<string>): fc.Arbitrary<string> {
  const parts = String(route.path).split('/').slice(1);
  return fc
    .record({
      fills: fc.array(values, { minLength: parts.length + 2, maxLength: parts.length + 2 }),
      tenants: fc.array(fc.constantFrom(...TENANT_VALUES), {
        minLength: parts.length,
        maxLength: parts.length,
      }),
      extra: fc.constantFrom(0, 0, 0, 1, 2),
      trailing: fc.boolean(),
    })
    .map(({ fills, tenants, extra, trailing }) => {
      let k = 0;
      const segs = parts.map((p, i) => {
        if (p === ':tenant') return tenants[i]!;
        if (p.startsWith(':') || p === '*') return fills[k++]!;
        return p;
      });
      for (let e = 0; e < extra; e++) segs.push(fills[k++] ?? 'x');
      const path = `/${segs.join('/')}`;
      return trailing && path !== '/' ? `${path}/` : path;
    });
}

function methodFor(route: RouteDoc): fc.Arbitrary<string> {
  const m = route.method;
  const own = m === '*' || m === undefined ? [...METHODS] : Array.isArray(m) ? m : [String(m)];
  // HEAD goes wherever GET does; other verbs now and then.
  const mine = own.includes('GET') ? [...own, 'HEAD'] : own;
  return fc.oneof(
    { weight: 4, arbitrary: fc.constantFrom(...mine) },
    { weight: 1, arbitrary: fc.constantFrom(...METHODS) },
  );
}

/** Requests for one world: most aimed at its routes, some anywhere in the grammar. */
export function worldSteps(w: World, withQuestionMark: boolean): fc.Arbitrary<WorldStep[]> {
  const values = valueArb(withQuestionMark ? QUESTION : []);
  const aimed = fc
    .constantFrom(...w.routes)
    .chain((route) => fc.tuple(methodFor(route), pathFor(route, values)));
  const anywhere = fc.tuple(fc.constantFrom<string>(...METHODS), pathArb(withQuestionMark));
  return fc.array(
    fc
      .record({
        user: fc.integer({ min: 0, max: usersOf(w).length - 1 }),
        target: fc.oneof({ weight: 5, arbitrary: aimed }, { weight: 1, arbitrary: anywhere }),
        advance: fc.constantFrom(0, 0, 0, 0, 0, 1_000, 60_000, 150_000),
        prefix: prefixArb,
      })
      .map(({ user, target: [method, path], advance, prefix }) => ({
        user,
        method,
        path,
        advance,
        prefix,
      })),
    { minLength: 1, maxLength: 60 },
  );
}

/** A world together with requests aimed at it. */
export function worldAndSteps(withQuestionMark: boolean): fc.Arbitrary<[World, WorldStep[]]> {
  return world.chain((w) => fc.tuple(fc.constant(w), worldSteps(w, withQuestionMark)));
}

const tokens = new Map<string, string>();

/** Signs one token per user, valid for a day of fake time. */
export async function worldTokens(): Promise<void> {
  for (const u of [...WORLD_USERS, ...ODD_USERS]) {
    const claims = u.tenant === undefined ? {} : { tid: u.tenant };
    tokens.set(
      u.subject,
      await new jose.SignJWT(claims)
        .setProtectedHeader({ alg: 'HS256', kid: 'dev', typ: 'JWT' })
        .setIssuer(ISSUER)
        .setAudience(AUDIENCE)
        .setSubject(u.subject)
        .setIssuedAt(Math.floor(T0 / 1000))
        .setExpirationTime(Math.floor(T0 / 1000) + 86_400)
        .sign(new TextEncoder().encode(SECRET)),
    );
  }
}

export function worldPolicy(w: World): unknown {
  return {
    version: 1,
    issuers: [
      {
        issuer: ISSUER,
        audiences: [AUDIENCE],
        algorithms: ['HS256'],
        keys: { secretEnv: 'WORLD_SECRET', kid: 'dev' },
        tenantClaim: 'tid',
      },
    ],
    cache: { ttlSeconds: 0, negativeTtlSeconds: 0 },
    ...(w.tenancy &&
      w.routes.some((r) => String(r.path).includes(':tenant')) && {
        tenancy: { pathParam: 'tenant' },
      }),
    roles: { staff: { grants: w.role.grants, denies: w.role.denies } },
    routes: w.routes,
  };
}

export interface BuiltWorld {
  /** The principal-mode authorizer under test. */
  readonly authorizer: Authorizer;
  /** The same Gatehouse answering for the current method ARN only: the uncached truth. */
  readonly oracle: Authorizer;
  readonly clock: { at: number };
}

export function buildWorld(w: World): BuiltWorld {
  const clock = { at: 0 };
  const now = () => T0 + clock.at;
  const store = new MemoryStore();
  for (const record of w.records) store.putUser(record);
  const gatehouse = new Gatehouse({
    policy: compilePolicy(worldPolicy(w), { env: { WORLD_SECRET: SECRET } }),
    store,
    now,
  });
  const options = { gatehouse, cacheTtlSeconds: WORLD_TTL, now, log: () => {} };
  const authorizer = createAuthorizer({ ...options, mode: 'principal' });
  const oracle = createAuthorizer({ ...options, mode: 'route' });
  return { authorizer, oracle, clock };
}

/** The TOKEN event for a step; `w` names the world whose users `s.user` indexes (default the fixed four). */
export function worldTokenEvent(
  s: WorldStep,
  w?: World,
): {
  event: AuthorizerEvent;
  arn: string;
  token: string;
} {
  const users = w === undefined ? WORLD_USERS : usersOf(w);
  const token = tokens.get(users[s.user]!.subject)!;
  const arn = `${s.prefix ?? PREFIX}${s.method}${s.path}`;
  return {
    event: { type: 'TOKEN', authorizationToken: `Bearer ${token}`, methodArn: arn },
    arn,
    token,
  };
}

/**
 * Replays steps through the cache model; throws on a leak: an allow (cached, or a fresh
 * principal-mode answer) for a request the core denies. The truth is the same Gatehouse asked
 * about the current method ARN alone (route mode), so a fresh principal-mode answer that is
 * itself a false deny (a grant expiring inside the TTL) does not hide a later cached leak.
 * False denies are principal mode's documented price and are only counted.
 */
export async function replayWorld(
  w: World,
  ss: readonly WorldStep[],
): Promise<{ falseDenies: number }> {
  const { authorizer, oracle, clock } = buildWorld(w);
  const model = new ApiGatewayCacheModel(authorizer, WORLD_TTL);
  let falseDenies = 0;
  for (const s of ss) {
    clock.at += s.advance;
    const { event, arn, token } = worldTokenEvent(s, w);
    const got = await model.request({ event, arn, identity: [`Bearer ${token}`], at: clock.at });
    const want: Answer = (await uncached(oracle, event, arn)).answer;
    if (got.allow && !want.allow) {
      throw new Error(
        `LEAK: ${usersOf(w)[s.user]!.subject} ${s.method} ${arn} at +${clock.at} ms: cached allow, ` +
          `uncached ${want.status}`,
      );
    }
    if (!got.allow && want.allow) falseDenies++;
  }
  return { falseDenies };
}

/** Values a sweep fills into every parameter position (pairs use the short list). */
const SWEEP_VALUES: readonly string[] = [...GOOD_VALUES, ...BAD_VALUES, ...ODD_VALUES];
const SWEEP_SHORT: readonly string[] = [
  '1',
  'x',
  'acme',
  'globex',
  'a;b',
  '%3B',
  '..',
  '!'.repeat(43),
];
/** Tenant values for the second of two parameters (the full list only for single holes). */
const TENANT_SHORT: readonly string[] = ['acme', 'globex', 'ACME', '.', '..', '*'];

/** Every request a sweep checks against one cached answer: each route's shape, filled. */
export function sweepRequests(w: World): { method: string; path: string }[] {
  const out = new Map<string, { method: string; path: string }>();
  for (const route of w.routes) {
    const parts = String(route.path).split('/').slice(1);
    const holes = parts.filter((p) => p.startsWith(':') || p === '*').length;
    const m = route.method;
    const own = m === '*' ? [...METHODS] : Array.isArray(m) ? m.map(String) : [String(m)];
    const methods = new Set([...own, ...(own.includes('GET') ? ['HEAD'] : []), 'DELETE']);
    const fills: string[][] =
      holes === 0
        ? [[]]
        : holes === 1
          ? [...SWEEP_VALUES, ...TENANT_VALUES].map((v) => [v])
          : SWEEP_SHORT.flatMap((a) =>
              [...SWEEP_SHORT, ...TENANT_SHORT].map((b) => [
                a,
                b,
                ...SWEEP_SHORT.slice(0, holes - 2),
              ]),
            );
    for (const f of fills) {
      for (const extra of ['', '/', '/x', '/x/y']) {
        let k = 0;
        const path = `/${parts.map((p) => (p.startsWith(':') || p === '*' ? f[k++]! : p)).join('/')}${extra}`;
        for (const method of methods) out.set(`${method} ${path}`, { method, path });
      }
      // A literal's neighbour: another tenant or a changed literal in the first segment.
      if (parts.length > 1) {
        const path = `/${f[0] ?? 'x'}/${parts
          .slice(1)
          .map((p) => (p.startsWith(':') || p === '*' ? 'x' : p))
          .join('/')}`;
        for (const method of methods) out.set(`${method} ${path}`, { method, path });
      }
    }
  }
  return [...out.values()];
}

/**
 * Takes one principal-mode answer per user (for a first request drawn from the world) and
 * checks it against every sweep request, at the moment it is issued and at the last moment
 * API Gateway would still reuse it: wherever the cached policy allows, the core must allow.
 */
export async function sweepWorld(
  w: World,
  firsts: readonly { method: string; path: string; prefix: string }[],
): Promise<{ checked: number; allowed: number }> {
  const { authorizer, oracle, clock } = buildWorld(w);
  const requests = sweepRequests(w);
  const users = usersOf(w);
  let checked = 0;
  let allowed = 0;
  for (let u = 0; u < users.length; u++) {
    clock.at = 0;
    const first = firsts[u % firsts.length]!;
    const { event } = worldTokenEvent({ user: u, ...first, advance: 0 }, w);
    let response: AuthorizerResponse;
    try {
      response = await authorizer(event);
    } catch {
      continue; // 401 / 500: API Gateway caches nothing
    }
    for (const r of requests) {
      // Later requests on the first one's stage: a cached policy names its own stage only.
      const step = { user: u, ...r, advance: 0, prefix: first.prefix };
      const { event: e, arn } = worldTokenEvent(step, w);
      checked++;
      if (!evaluatePolicy(response, arn).allow) continue;
      allowed++;
      for (const at of [0, (WORLD_TTL - 1) * 1000]) {
        clock.at = at;
        const want = (await uncached(oracle, e, arn)).answer;
        if (!want.allow) {
          throw new Error(
            `LEAK: ${users[u]!.subject} (first ${first.method} ${first.path}) ` +
              `${r.method} ${arn} at +${at} ms: cached allow, uncached ${want.status}`,
          );
        }
      }
    }
  }
  return { checked, allowed };
}

/** A world with one first request per user, aimed at its routes. */
export const worldAndFirsts: fc.Arbitrary<
  [World, { method: string; path: string; prefix: string }[]]
> = world.chain((w) =>
  fc.tuple(
    fc.constant(w),
    fc.array(
      fc
        .constantFrom(...w.routes)
        .chain((route) => fc.tuple(methodFor(route), pathFor(route, valueArb([])), prefixArb))
        .map(([method, path, prefix]) => ({ method, path, prefix })),
      { minLength: usersOf(w).length, maxLength: usersOf(w).length },
    ),
  ),
);
