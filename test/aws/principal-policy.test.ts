/**
 * Principal-mode regressions, one per review finding (docs/aws.md, "Modes and caching"): each
 * builds a small world in memory, takes the cached answer for a first request and checks it
 * against later requests the core denies. Each failed before its fix.
 */
import * as fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { IamResponse } from '../../src/adapters/apigateway.ts';
import { FILLED_PARAM_MAX, MALFORMED_PATTERNS } from '../../src/adapters/apigateway-policy.ts';
import { splitPath } from '../../src/policy/routes.ts';
import type { Grant, UserRecord } from '../../src/types.ts';
import { evaluatePolicy } from './apigw-cache-model.ts';
import {
  buildWorld,
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

/** u1's principal-mode answer for a first request. */
async function policyFor(w: World, method: string, path: string): Promise<IamResponse> {
  const { authorizer } = buildWorld(w);
  return (await authorizer(
    worldTokenEvent({ user: 0, method, path, advance: 0 }).event,
  )) as IamResponse;
}

/** Cached answer (from `policy`) and uncached answer for u1's request. */
async function both(w: World, policy: IamResponse, method: string, path: string) {
  const { oracle } = buildWorld(w);
  const { event, arn } = worldTokenEvent({ user: 0, method, path, advance: 0 });
  let uncached = false;
  try {
    uncached = evaluatePolicy(await oracle(event), arn).allow;
  } catch {
    uncached = false;
  }
  return { cached: evaluatePolicy(policy, arn).allow, uncached };
}

const resources = (r: IamResponse, effect: 'Allow' | 'Deny') =>
  (r.policyDocument.Statement as { Effect: string; Resource: string[] }[])
    .filter((s) => s.Effect === effect)
    .flatMap((s) => s.Resource)
    .map((x) => x.slice(PREFIX.length));

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
