/**
 * Principal-mode regressions, one per review finding (docs/aws.md, "Modes and caching"): each
 * builds a small world in memory, takes the cached answer for a first request and checks it
 * against later requests the core denies. Each failed before its fix.
 */
import * as fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { AuthorizerFailure, type IamResponse } from '../../src/aws/authorizer.ts';
import {
  FILLED_PARAM_MAX,
  MALFORMED_PATTERNS,
  MAX_RESOURCE_LENGTH,
} from '../../src/aws/iam-policy.ts';
import { splitPath } from '../../src/policy/routes.ts';
import type { Grant, UserRecord } from '../../src/types.ts';
import { evaluatePolicy } from './apigw-cache-model.ts';
import {
  buildWorld,
  ODD_USERS,
  PREFIXES,
  replayWorld,
  type World,
  worldTokenEvent,
  worldTokens,
} from './cache-worlds.ts';
import { PREFIX } from './support.ts';

beforeAll(worldTokens);

type RouteDoc = Record<string, unknown>;

/** u1 (tenant acme) holds `grants` and `denies`; u2..u4 hold nothing. */
function worldOf(
  routes: RouteDoc[],
  grants: (string | Grant)[],
  denies: (string | Grant)[] = [],
  tenancy = false,
): World {
  const g = (x: string | Grant): Grant => (typeof x === 'string' ? { permission: x } : x);
  const empty = (subject: string, tenant?: string): UserRecord => ({
    subject,
    ...(tenant !== undefined && { tenant }),
    roles: [],
    grants: [],
    denies: [],
  });
  return {
    tenancy,
    routes,
    role: { grants: [], denies: [] },
    records: [
      { ...empty('u1', 'acme'), grants: grants.map(g), denies: denies.map(g) },
      empty('u2', 'globex'),
      empty('u3', 'acme'),
      empty('u4'),
    ],
  };
}

/** Who asks: u1 (index 0) unless the world has an odd-tenant user, then that one (index 4). */
const asker = (w: World) => (w.odd === undefined ? 0 : 4);

/** The asker's principal-mode answer for a first request. */
async function policyFor(
  w: World,
  method: string,
  path: string,
  prefix = PREFIX,
): Promise<IamResponse> {
  const { authorizer } = buildWorld(w);
  return (await authorizer(
    worldTokenEvent({ user: asker(w), method, path, advance: 0, prefix }, w).event,
  )) as IamResponse;
}

/** Cached answer (from `policy`) and uncached answer for the asker's request. */
async function both(w: World, policy: IamResponse, method: string, path: string, prefix = PREFIX) {
  const { oracle } = buildWorld(w);
  const { event, arn } = worldTokenEvent({ user: asker(w), method, path, advance: 0, prefix }, w);
  let uncached = false;
  try {
    uncached = evaluatePolicy(await oracle(event), arn).allow;
  } catch {
    uncached = false;
  }
  return { cached: evaluatePolicy(policy, arn).allow, uncached };
}

const fullResources = (r: IamResponse) =>
  (r.policyDocument.Statement as { Effect: string; Resource: string[] }[]).flatMap(
    (s) => s.Resource,
  );

const resources = (r: IamResponse, effect: 'Allow' | 'Deny', prefix = PREFIX) =>
  (r.policyDocument.Statement as { Effect: string; Resource: string[] }[])
    .filter((s) => s.Effect === effect)
    .flatMap((s) => s.Resource)
    .map((x) => x.slice(prefix.length));

/** A world whose only asker is an odd-tenant user (`tenant` from ODD_USERS) holding `grants`. */
function oddWorld(routes: RouteDoc[], tenant: string, grants: string[]): World {
  const odd = ODD_USERS.find((u) => u.tenant === tenant)!;
  const w = worldOf(routes, [], [], true);
  return {
    ...w,
    odd,
    records: [
      ...w.records,
      {
        subject: odd.subject,
        tenant,
        roles: [],
        grants: grants.map((permission) => ({ permission })),
        denies: [],
      },
    ],
  };
}

describe('1. a tenant route inside a broader wildcard route', () => {
  const w = worldOf(
    [
      { method: 'GET', path: '/t/:tenant/reports', authenticated: true },
      { method: 'GET', path: '/:a/:b/:c', require: ['read:pages'] },
    ],
    ['read:pages'],
    [],
    true,
  );

  it('never lets the wildcard answer for another tenant', async () => {
    const p = await policyFor(w, 'GET', '/t/acme/reports');
    expect(resources(p, 'Deny')).toContain('GET/t/?*/reports');
    for (const path of ['/t/globex/reports', '/t/acme;/reports', '/t/ACME/reports']) {
      expect(await both(w, p, 'GET', path)).toEqual({ cached: false, uncached: false });
    }
    // Documented false deny: the caller's own tenant route, carved out with the others.
    expect(await both(w, p, 'GET', '/t/acme/reports')).toEqual({ cached: false, uncached: true });
    expect(await both(w, p, 'GET', '/x/y/z')).toEqual({ cached: true, uncached: true });
  });

  it('passes the review repro through the cache model', async () => {
    await expect(
      replayWorld(w, [
        { user: 0, method: 'GET', path: '/t/acme/reports', advance: 0 },
        { user: 0, method: 'GET', path: '/t/globex/reports', advance: 0 },
      ]),
    ).resolves.toBeDefined();
  });
});

describe('2. anyOf: a deny on any alternative denies', () => {
  const routes = [
    { method: 'DELETE', path: '/posts/:id', anyOf: ['delete:posts:{id}', 'admin:posts'] },
  ];
  const cases: [string, (string | Grant)[], (string | Grant)[]][] = [
    ['wildcard grant, deny on the second alternative', ['delete:posts:*'], ['admin:posts']],
    ['item grant, deny on the second alternative', ['delete:posts:42'], ['admin:posts']],
    [
      'wildcard grant, conditional deny (holds now) on the second alternative',
      ['delete:posts:*'],
      [
        {
          permission: 'admin:posts',
          when: { time: { days: ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] } },
        },
      ],
    ],
    [
      'second alternative granted, deny on the first for one item',
      ['admin:posts'],
      ['delete:posts:7'],
    ],
  ];
  it.each(cases)('%s', async (_name, grants, denies) => {
    const w = worldOf(routes, grants, denies);
    const p = await policyFor(w, 'DELETE', '/posts/1');
    for (const path of ['/posts/1', '/posts/2', '/posts/7', '/posts/42']) {
      const r = await both(w, p, 'DELETE', path);
      expect(r.cached && !r.uncached, path).toBe(false);
    }
    expect(resources(p, 'Allow')).not.toContain('DELETE/posts/?*');
    expect(resources(p, 'Allow')).not.toContain('DELETE/posts/42');
  });

  it('still lists the route when no alternative can be denied', async () => {
    const w = worldOf(routes, ['delete:posts:*'], ['read:posts']);
    expect(resources(await policyFor(w, 'GET', '/'), 'Allow')).toContain('DELETE/posts/?*');
  });
});

describe('3. paths the core refuses are never allowed from the cache', () => {
  const w = worldOf(
    [
      { method: 'GET', path: '/posts/:id', require: ['read:posts'] },
      { method: ['PUT', 'PATCH'], path: '/posts/:id', require: ['write:posts:{id}'] },
      { method: 'GET', path: '/files/*', require: ['read:files'] },
      { method: 'GET', path: '/orgs/:org/repos/:repo', require: ['read:repos:{org}:{repo}'] },
    ],
    ['read:posts', 'write:posts:*', 'read:files', 'read:repos:*:*'],
  );
  const refused: [string, string][] = [
    ['GET', '/posts/1;x'],
    ['GET', '/posts/..;'],
    ['HEAD', '/posts/%00'],
    ['GET', '/posts/%7F'],
    ['GET', '/posts/%3B'],
    ['GET', '/posts/%EF%BC%8E%EF%BC%8E'],
    ['GET', '/posts/%zz'],
    ['GET', '/posts/%'],
    ['GET', '/posts/%C0%AE'],
    ['GET', '/posts/a#b'],
    ['PUT', `/posts/${'a'.repeat(129)}`],
    ['PUT', `/posts/${'!'.repeat(FILLED_PARAM_MAX + 1)}`],
    ['PATCH', `/posts/${'*'.repeat(FILLED_PARAM_MAX + 1)}`],
    ['PATCH', '/posts/x%3B'],
    ['GET', '/files/..;/..;/admin'],
    ['GET', '/files/%EF%BC%8E%EF%BC%8E/%EF%BC%8E%EF%BC%8E/admin'],
    ['GET', '/files/a/./b'],
    ['GET', '/files//b'],
    ['GET', '/orgs/..;/repos/x'],
    ['GET', `/orgs/x/repos/${'!'.repeat(FILLED_PARAM_MAX + 1)}`],
  ];

  it.each(refused)('%s %s', async (method, path) => {
    const p = await policyFor(w, 'GET', '/posts/1');
    expect(await both(w, p, method, path)).toEqual({ cached: false, uncached: false });
  });

  it('keeps the well-formed neighbours (and documents the false denies)', async () => {
    const p = await policyFor(w, 'GET', '/posts/1');
    for (const [method, path] of [
      ['GET', '/posts/1'],
      ['PUT', `/posts/${'!'.repeat(FILLED_PARAM_MAX)}`],
      ['GET', `/posts/${'a'.repeat(200)}`], // read:posts fills nothing: no length limit
      ['GET', '/files/a/b/c'],
      ['GET', '/orgs/x/repos/y'],
    ] as const) {
      expect(await both(w, p, method, path), `${method} ${path}`).toEqual({
        cached: true,
        uncached: true,
      });
    }
    // Documented false denies: any percent-encoding, filled ids of 43-128 characters.
    for (const [method, path] of [
      ['GET', '/posts/caf%C3%A9'],
      ['PUT', '/posts/a%3Ab'],
      ['PUT', `/posts/${'a'.repeat(64)}`],
    ] as const) {
      expect(await both(w, p, method, path), `${method} ${path}`).toEqual({
        cached: false,
        uncached: true,
      });
    }
  });

  it('drops a wildcard whose filled permission could outgrow 512 characters', async () => {
    const long = 'x'.repeat(100);
    const w2 = worldOf(
      [{ method: 'GET', path: '/a/:p/:q/:r/:s', require: [`read:${long}:{p}:{q}:{r}:{s}`] }],
      ['*'],
    );
    const p = await policyFor(w2, 'GET', '/a/1/2/3/4');
    expect(resources(p, 'Allow')).not.toContain('GET/a/?*/?*/?*/?*');
    const deep = Array.from({ length: 4 }, () => '!'.repeat(FILLED_PARAM_MAX)).join('/');
    expect(await both(w2, p, 'GET', `/a/${deep}`)).toEqual({ cached: false, uncached: false });
  });

  it('MALFORMED_PATTERNS deny every printable path splitPath refuses', () => {
    const alphabet = [
      'a',
      '.',
      '/',
      '%',
      '2',
      'e',
      'E',
      'f',
      'F',
      '3',
      'b',
      'B',
      ';',
      '\\',
      '0',
      '7',
      'z',
      'C',
      'c',
    ];
    const malformed = MALFORMED_PATTERNS.map(
      (p) => new RegExp(`^${p.split('*').map(esc).join('.*')}$`, 's'),
    );
    fc.assert(
      fc.property(
        fc.array(fc.constantFrom(...alphabet), { maxLength: 14 }).map((cs) => `/${cs.join('')}`),
        (path) => {
          if (splitPath(path) !== null) return;
          expect(
            malformed.some((re) => re.test(`GET${path}`)),
            path,
          ).toBe(true);
        },
      ),
      { numRuns: 5000 },
    );
  });
});

function esc(text: string): string {
  return text.replace(/[\\^$.*+?()[\]{}|/]/g, '\\$&');
}

describe('4. HEAD goes to an explicit HEAD route of the same shape', () => {
  it('does not list the GET route for HEAD', async () => {
    const w = worldOf(
      [
        { method: 'GET', path: '/reports/:id', require: ['read:reports'] },
        { method: 'HEAD', path: '/reports/:id', require: ['audit:reports'] },
      ],
      ['read:reports'],
    );
    const p = await policyFor(w, 'GET', '/reports/1');
    expect(await both(w, p, 'HEAD', '/reports/2')).toEqual({ cached: false, uncached: false });
    expect(await both(w, p, 'GET', '/reports/2')).toEqual({ cached: true, uncached: true });
  });

  it('still lists HEAD through GET when no HEAD route exists', async () => {
    const w = worldOf(
      [{ method: 'GET', path: '/reports/:id', require: ['read:reports'] }],
      ['read:reports'],
    );
    const p = await policyFor(w, 'GET', '/reports/1');
    expect(await both(w, p, 'HEAD', '/reports/2')).toEqual({ cached: true, uncached: true });
  });
});

describe('5. a parameter before a trailing * (IAM `*` spans /)', () => {
  const r = (path: string, require = 'read:repos') => ({ method: 'GET', path, require: [require] });
  const orgs = worldOf(
    [r('/orgs/:org/repos/*'), r('/orgs/:org/admin/repos', 'admin:repos')],
    ['read:repos'],
  );
  const settings = worldOf([r('/:a/settings/*')], ['read:repos']);
  const two = worldOf([r('/a/:p/b/:q/c/*')], ['read:repos']);
  const user = worldOf([r('/u/:user/*')], ['read:repos']);

  // Each parameter in turn holds a `/`: the path belongs to no route, or to the sibling.
  const spans: [string, World, string][] = [
    ['the review repro: a deeper literal sibling', orgs, '/orgs/x/admin/repos'],
    ['the sibling with a trailing slash', orgs, '/orgs/x/admin/repos/'],
    ['below the sibling', orgs, '/orgs/x/admin/repos/z'],
    ['no route at all', orgs, '/orgs/x/y/repos'],
    ['a parameter first', settings, '/x/y/settings/z'],
    ['a parameter first, nothing below', settings, '/x/y/settings'],
    ['the first of two parameters', two, '/a/x/y/b/q/c/z'],
    ['the second of two parameters', two, '/a/p/b/x/y/c'],
  ];
  it.each(spans)('%s: %s', async (_name, w, path) => {
    const p = await policyFor(w, 'GET', '/');
    expect(await both(w, p, 'GET', path)).toEqual({ cached: false, uncached: false });
  });

  it('keeps the routes listed, with a documented false deny where the literal comes back', async () => {
    const cases: [World, string][] = [
      [orgs, '/orgs/x/repos'],
      [orgs, '/orgs/x/repos/'],
      [orgs, '/orgs/x/repos/a/b'],
      [settings, '/x/settings/a/b'],
      [two, '/a/p/b/q/c/z'],
      // Only parameters follow :user: a span is the route's own rest, no Deny needed.
      [user, '/u/a/b/c'],
    ];
    for (const [w, path] of cases) {
      const p = await policyFor(w, 'GET', '/');
      expect(await both(w, p, 'GET', path), path).toEqual({ cached: true, uncached: true });
    }
    const p = await policyFor(orgs, 'GET', '/');
    expect(await both(orgs, p, 'GET', '/orgs/x/repos/y/repos')).toEqual({
      cached: false,
      uncached: true,
    });
  });
});

describe('6. a trailing slash is the same route to the core', () => {
  it('carves /account/ out of /* along with /account (the review repro)', async () => {
    const w = worldOf(
      [
        { method: 'GET', path: '/*', require: ['read:site'] },
        { method: 'GET', path: '/account', require: ['read:account'] },
        { method: 'GET', path: '/files/index', require: ['read:account'] },
      ],
      ['read:site'],
    );
    const p = await policyFor(w, 'GET', '/');
    for (const path of ['/account', '/account/', '/files/index/']) {
      expect(await both(w, p, 'GET', path), path).toEqual({ cached: false, uncached: false });
    }
    expect(await both(w, p, 'GET', '/about/')).toEqual({ cached: true, uncached: true });
  });

  it('carves a tenant route with a trailing slash out of /*', async () => {
    const w = worldOf(
      [
        { method: 'GET', path: '/*', require: ['read:site'] },
        { method: 'GET', path: '/t/:tenant/reports', authenticated: true },
      ],
      ['read:site'],
      [],
      true,
    );
    const p = await policyFor(w, 'GET', '/');
    for (const path of ['/t/globex/reports', '/t/globex/reports/']) {
      expect(await both(w, p, 'GET', path), path).toEqual({ cached: false, uncached: false });
    }
    expect(await both(w, p, 'GET', '/t/x/')).toEqual({ cached: true, uncached: true });
    // Documented false deny: the carve-out's `?*` also spans `/` at the tenant position.
    expect(await both(w, p, 'GET', '/t/a/b/reports')).toEqual({ cached: false, uncached: true });
  });
});

describe('7. tenants that are not safe path segments', () => {
  const routes = [
    { method: 'GET', path: '/t/:tenant/reports', authenticated: true },
    { method: 'GET', path: '/t/:tenant/files/*', authenticated: true },
    { method: 'GET', path: '/posts', require: ['read:posts'] },
  ];

  // The core refuses the dot tenants' paths; it accepts `/t/*/reports` for tenant `*`, which
  // the cache then denies (a documented false deny).
  it.each(['..', '.', '*', '?', 'a/b', '%61cme', 'a*b', 'acme/..'])(
    'tenant %j lists none of its own tenant routes',
    async (tenant) => {
      const w = oddWorld(routes, tenant, ['read:posts']);
      const p = await policyFor(w, 'GET', '/posts');
      for (const path of [`/t/${tenant}/reports`, `/t/${tenant}/files/x`, `/t/${tenant}/files`]) {
        if (path.includes('?')) continue; // never in a REST method ARN
        expect((await both(w, p, 'GET', path)).cached, path).toBe(false);
      }
      expect(resources(p, 'Allow')).toEqual(['GET/posts', 'HEAD/posts']);
    },
  );

  it('lists a safe odd tenant (`~`) as itself', async () => {
    const w = oddWorld(routes, '~', []);
    const p = await policyFor(w, 'GET', '/t/~/reports');
    expect(await both(w, p, 'GET', '/t/~/reports')).toEqual({ cached: true, uncached: true });
  });

  it('never lists an exact resource the core refuses, and denies malformed paths near any allow', async () => {
    const w = oddWorld(routes, '..', ['read:posts']);
    const p = await policyFor(w, 'GET', '/posts');
    for (const r of resources(p, 'Allow')) {
      if (r.includes('*') || r.includes('?')) continue;
      expect(splitPath(r.slice(r.indexOf('/'))), r).not.toBeNull();
    }
    // Exact allows only: no malformed path can match one, so none is needed (and none is sent).
    expect(resources(p, 'Deny')).toEqual([]);
    const wide = oddWorld(
      [...routes, { method: 'GET', path: '/p/:id', authenticated: true }],
      '..',
      [],
    );
    expect(resources(await policyFor(wide, 'GET', '/p/1'), 'Deny')).toEqual(
      expect.arrayContaining(MALFORMED_PATTERNS),
    );
  });
});

describe("8. no Resource longer than API Gateway's 512-character limit", () => {
  const within = (p: IamResponse) =>
    expect(Math.max(...fullResources(p).map((r) => r.length))).toBeLessThanOrEqual(
      MAX_RESOURCE_LENGTH,
    );

  it('drops a wildcard whose filled-parameter Deny is too long, and carves it out of broader routes', async () => {
    const long = 'l'.repeat(420);
    const w = worldOf(
      [
        { method: 'GET', path: `/${long}/:id`, require: ['read:long:{id}'] },
        { method: 'GET', path: '/:a/:b', require: ['read:pages'] },
      ],
      ['*'],
    );
    const p = await policyFor(w, 'GET', '/p/q');
    within(p);
    expect(resources(p, 'Allow')).not.toContain(`GET/${long}/?*`);
    for (const id of ['a'.repeat(129), '!'.repeat(FILLED_PARAM_MAX + 1)]) {
      expect(await both(w, p, 'GET', `/${long}/${id}`)).toEqual({ cached: false, uncached: false });
      expect(await both(w, p, 'HEAD', `/${long}/${id}`)).toEqual({
        cached: false,
        uncached: false,
      });
    }
    // Documented false deny: the long route itself; its broader neighbour stays listed.
    expect(await both(w, p, 'GET', `/${long}/x`)).toEqual({ cached: false, uncached: true });
    expect(await both(w, p, 'GET', '/p/q')).toEqual({ cached: true, uncached: true });
  });

  it('drops a wildcard whose carve-out Deny is too long (a long literal child under /*)', async () => {
    const long = 'k'.repeat(460);
    const w = worldOf(
      [
        { method: 'GET', path: '/*', require: ['read:site'] },
        { method: 'GET', path: `/${long}`, require: ['admin:long'] },
        { method: 'GET', path: '/posts', require: ['read:site'] },
      ],
      ['read:site'],
    );
    const p = await policyFor(w, 'GET', '/posts');
    within(p);
    expect(await both(w, p, 'GET', `/${long}`)).toEqual({ cached: false, uncached: false });
    expect(await both(w, p, 'GET', '/posts')).toEqual({ cached: true, uncached: true });
    expect(await both(w, p, 'GET', '/about')).toEqual({ cached: false, uncached: true });
  });

  it('counts the ARN prefix: a 128-character stage leaves less room', async () => {
    const stage = PREFIXES[3];
    const mid = 'm'.repeat(400);
    const w = worldOf(
      [
        { method: 'GET', path: '/*', require: ['read:site'] },
        { method: 'GET', path: `/${mid}`, require: ['admin:long'] },
      ],
      ['read:site'],
    );
    const usual = await policyFor(w, 'GET', '/x');
    expect(resources(usual, 'Allow')).toContain('GET/*');
    const p = await policyFor(w, 'GET', '/x', stage);
    within(p);
    expect(resources(p, 'Allow', stage)).not.toContain('GET/*');
    expect(await both(w, p, 'GET', `/${mid}/`, stage)).toEqual({ cached: false, uncached: false });
  });

  it("bounds the current request's own Deny and still denies that request", async () => {
    const w = worldOf([{ method: 'GET', path: '/posts/:id', require: ['read:posts'] }], []);
    const path = `/posts/${'z'.repeat(600)}`;
    const p = await policyFor(w, 'GET', path);
    within(p);
    expect(await both(w, p, 'GET', path)).toEqual({ cached: false, uncached: false });
  });
});

describe('9. the method ARN prefix heads every Resource', () => {
  it('refuses a prefix holding an IAM wildcard (a 500, never a wider allow)', async () => {
    const w = worldOf([{ method: 'GET', path: '/posts', require: ['read:posts'] }], ['read:posts']);
    const { authorizer } = buildWorld(w);
    for (const prefix of [
      'arn:aws:execute-api:eu-west-1:123456789012:*/prod/',
      'arn:aws:execute-api:eu-west-1:123456789012:abcdef1234/pro?/',
    ]) {
      const { event } = worldTokenEvent({
        user: 0,
        method: 'GET',
        path: '/posts',
        advance: 0,
        prefix,
      });
      await expect(authorizer(event)).rejects.toBeInstanceOf(AuthorizerFailure);
    }
  });
});
