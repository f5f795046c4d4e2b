import { readFileSync } from 'node:fs';
import { describe, expect, it, vi } from 'vitest';
import { policyJsonSchema } from '../../../scripts/policy-json-schema.ts';
import { ConfigError } from '../../../src/errors.ts';
import {
  compilePolicy,
  Gatehouse,
  type PolicyDocument,
  parsePolicyText,
} from '../../../src/policy/index.ts';
import { MemoryStore } from '../../../src/stores/index.ts';

const jwks = {
  keys: [
    {
      kty: 'OKP',
      crv: 'Ed25519',
      x: '11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo',
      kid: 'k1',
      alg: 'EdDSA',
    },
  ],
};

// Test documents are mutated freely to build invalid policies; the validator is what types them.
// biome-ignore lint/suspicious/noExplicitAny: deliberately untyped to construct invalid input
type Doc = Record<string, any>;

function base(): PolicyDocument {
  return {
    version: 1,
    issuers: [
      { issuer: 'https://id.example/', audiences: ['api'], algorithms: ['EdDSA'], keys: { jwks } },
    ],
    routes: [{ method: 'GET', path: '/posts/:id', require: ['read:posts'] }],
  };
}

function fieldOf(run: () => unknown): string {
  try {
    run();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as ConfigError).field;
  }
  throw new Error('expected a ConfigError');
}

function mutate(change: (doc: Doc) => void): () => unknown {
  const doc = structuredClone(base()) as Doc;
  change(doc);
  return () => compilePolicy(doc, { env: { WEAK: 'short', GOOD: 'x'.repeat(32) } });
}

describe('policy validation names the field', () => {
  it.each<[string, (doc: Doc) => void, string]>([
    ['missing version', (d) => delete d.version, 'policy.version'],
    [
      'a misspelt route key',
      (d) => (d.routes[0].requires = ['read:posts']),
      'policy.routes[0].requires',
    ],
    [
      'a malformed permission',
      (d) => (d.routes[0].require = ['read posts']),
      'policy.routes[0].require[0]',
    ],
    [
      'a wildcard in a requirement',
      (d) => (d.routes[0].require = ['read:*']),
      'policy.routes[0].require[0]',
    ],
    ['two requirement kinds', (d) => (d.routes[0].public = true), 'policy.routes[0]'],
    [
      'delegated: false on a public route (nothing would enforce it)',
      (d) => (d.routes[0] = { method: 'GET', path: '/health', public: true, delegated: false }),
      'policy.routes[0].delegated',
    ],
    [
      'an unknown template parameter',
      (d) => (d.routes[0].require = ['read:posts:{slug}']),
      'policy.routes[0].require',
    ],
    ['a path without a slash', (d) => (d.routes[0].path = 'posts'), 'policy.routes[0].path'],
    ['a lower-case method', (d) => (d.routes[0].method = 'get'), 'policy.routes[0].method'],
    ['no key source', (d) => (d.issuers[0].keys = {}), 'policy.issuers[0].keys'],
    [
      'two key sources',
      (d) => (d.issuers[0].keys.jwksUri = 'https://id.example/jwks'),
      'policy.issuers[0].keys',
    ],
    [
      'a plain-http JWKS URL',
      (d) => (d.issuers[0].keys = { jwksUri: 'http://id.example/jwks' }),
      'policy.issuers[0].keys.jwksUri',
    ],
    [
      'a missing audience decision',
      (d) => delete d.issuers[0].audiences,
      'policy.issuers[0].audiences',
    ],
    [
      'an unknown algorithm',
      (d) => (d.issuers[0].algorithms = ['none']),
      'policy.issuers[0].algorithms[0]',
    ],
    [
      'a leeway above five minutes',
      (d) => (d.token = { leewaySeconds: 301 }),
      'policy.token.leewaySeconds',
    ],
    [
      'an unset secret variable',
      (d) => {
        d.issuers[0].algorithms = ['HS256'];
        d.issuers[0].keys = { secretEnv: 'MISSING' };
      },
      'policy.issuers[0].keys.secretEnv',
    ],
    [
      'a bad role grant',
      (d) => (d.roles = { r: { grants: ['nope'] } }),
      'policy.roles.r.grants[0]',
    ],
    [
      'a bad grant expiry',
      (d) => (d.roles = { r: { grants: [{ permission: 'a:b', expires: 'tomorrow' }] } }),
      'policy.roles.r.grants[0].expires',
    ],
    [
      'a bad CIDR',
      (d) => (d.roles = { r: { grants: [{ permission: 'a:b', when: { ip: ['10.0.0.0/33'] } }] } }),
      'policy.roles.r.grants[0].when.ip[0]',
    ],
    [
      'a duplicate issuer',
      (d) => d.issuers.push(structuredClone(d.issuers[0])),
      'policy.issuers[1].issuer',
    ],
    [
      'claims options with the store source',
      (d) => (d.permissions = { scopeClaim: 'scp' }),
      'policy.permissions.scopeClaim',
    ],
    [
      'a tenant parameter no route declares',
      (d) => (d.tenancy = { pathParam: 'tenantId' }),
      'policy.tenancy.pathParam',
    ],
    [
      'a role named __proto__',
      (d) => (d.roles = JSON.parse('{"__proto__": {"grants": ["a:b"]}}')),
      'policy.roles.__proto__',
    ],
    [
      'a claim condition named constructor',
      (d) =>
        (d.roles = {
          r: {
            grants: [
              {
                permission: 'a:b',
                when: JSON.parse('{"claims": {"constructor": "x", "mfa": true}}'),
              },
            ],
          },
        }),
      'policy.roles.r.grants[0].when.claims.constructor',
    ],
  ])('rejects %s', (_name, change, field) => {
    expect(fieldOf(mutate(change))).toBe(field);
  });

  it('refuses to start with an HS secret shorter than the hash output', () => {
    const compile = mutate((d) => {
      d.issuers[0].algorithms = ['HS256'];
      d.issuers[0].keys = { secretEnv: 'WEAK' };
    });
    const policy = compile() as ReturnType<typeof compilePolicy>;
    const field = fieldOf(() => new Gatehouse({ policy, store: new MemoryStore() }));
    expect(field).toMatch(/^policy\.issuers\[0\]\.keys/);
  });

  it('accepts an HS secret of the hash length from the environment', () => {
    const run = mutate((d) => {
      d.issuers[0].algorithms = ['HS256'];
      d.issuers[0].keys = { secretEnv: 'GOOD' };
    });
    expect(run).not.toThrow();
  });

  it("accepts the verifier's kid rule for a configured key: RFC 7520's example, : and #", () => {
    for (const kid of ['bilbo.baggins@hobbiton.example', 'urn:x:1', 'did:web:id.example#k1']) {
      const run = mutate((d) => {
        d.issuers[0].algorithms = ['HS256'];
        d.issuers[0].keys = { secretEnv: 'GOOD', kid };
      });
      expect(run).not.toThrow();
    }
  });

  it('refuses a configured kid with whitespace, control or non-ASCII characters, or over 256', () => {
    for (const kid of ['k 1', 'k\n', 'clé', 'k'.repeat(257)]) {
      const run = mutate((d) => {
        d.issuers[0].algorithms = ['HS256'];
        d.issuers[0].keys = { secretEnv: 'GOOD', kid };
      });
      expect(fieldOf(run)).toBe('policy.issuers[0].keys.kid');
    }
  });

  it('names a role inheritance cycle', () => {
    const run = mutate((d) => {
      d.roles = { a: { inherits: ['b'] }, b: { inherits: ['a'] } };
    });
    expect(run).toThrow(/a -> b -> a|b -> a -> b/);
  });

  it('allows http JWKS URLs on loopback for development', () => {
    const run = mutate((d) => (d.issuers[0].keys = { jwksUri: 'http://127.0.0.1:8080/jwks' }));
    expect(run).not.toThrow();
  });

  it('keeps claims that policy conditions read', () => {
    const policy = compilePolicy({
      ...base(),
      roles: { r: { grants: [{ permission: 'a:b', when: { claims: { dept: 'eng' } } }] } },
    });
    expect(policy.verifier.issuers[0]?.keepClaims).toEqual(['dept']);
  });
});

describe('policy validation says missing or misspelt', () => {
  function problemOf(run: () => unknown): { field: string; expected: string } {
    try {
      run();
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      const { field, expected } = error as ConfigError;
      return { field, expected };
    }
    throw new Error('expected a ConfigError');
  }

  const grantWith = (grant: unknown) => (d: Doc) => (d.roles = { r: { grants: [grant] } });

  it.each<[string, (doc: Doc) => void, string]>([
    ['version at the top level', (d) => delete d.version, 'policy.version'],
    ['issuers at the top level', (d) => delete d.issuers, 'policy.issuers'],
    ['routes at the top level', (d) => delete d.routes, 'policy.routes'],
    ['issuer name', (d) => delete d.issuers[0].issuer, 'policy.issuers[0].issuer'],
    ['audience decision', (d) => delete d.issuers[0].audiences, 'policy.issuers[0].audiences'],
    ['algorithm list', (d) => delete d.issuers[0].algorithms, 'policy.issuers[0].algorithms'],
    ['key source', (d) => delete d.issuers[0].keys, 'policy.issuers[0].keys'],
    ['JWKS keys list', (d) => (d.issuers[0].keys.jwks = {}), 'policy.issuers[0].keys.jwks.keys'],
    ['route path', (d) => delete d.routes[0].path, 'policy.routes[0].path'],
    [
      'grant permission',
      grantWith({ expires: 1_900_000_000 }),
      'policy.roles.r.grants[0].permission',
    ],
    [
      'end of an hours condition',
      grantWith({ permission: 'a:b', when: { time: { hours: { from: '09:00' } } } }),
      'policy.roles.r.grants[0].when.time.hours.to',
    ],
  ])('reports a missing %s as missing, naming it', (_name, change, field) => {
    const problem = problemOf(mutate(change));

    expect(problem).toEqual({ field, expected: 'missing required field' });
  });

  it.each<[string, (doc: Doc) => void, string, string]>([
    ['top-level key', (d) => (d.route = d.routes), 'policy.route', 'routes'],
    ['case slip at the top level', (d) => (d.Version = 1), 'policy.Version', 'version'],
    ['token option', (d) => (d.token = { leeway: 5 }), 'policy.token.leeway', 'leewaySeconds'],
    [
      'required issuer key',
      (d) => {
        d.issuers[0].audiance = d.issuers[0].audiences;
        delete d.issuers[0].audiences;
      },
      'policy.issuers[0].audiance',
      'audiences',
    ],
    [
      'swapped-letter issuer key',
      (d) => {
        d.issuers[0].algortihms = d.issuers[0].algorithms;
        delete d.issuers[0].algorithms;
      },
      'policy.issuers[0].algortihms',
      'algorithms',
    ],
    [
      'optional issuer key',
      (d) => (d.issuers[0].tenantclaim = 'tid'),
      'policy.issuers[0].tenantclaim',
      'tenantClaim',
    ],
    [
      'snake_case key option',
      (d) => (d.issuers[0].keys.cache_ttl_seconds = 60),
      'policy.issuers[0].keys.cache_ttl_seconds',
      'cacheTtlSeconds',
    ],
    [
      'route key',
      (d) => (d.routes[0].requires = ['read:posts']),
      'policy.routes[0].requires',
      'require',
    ],
    [
      'required route key',
      (d) => {
        d.routes[0].pth = d.routes[0].path;
        delete d.routes[0].path;
      },
      'policy.routes[0].pth',
      'path',
    ],
    ['cache option', (d) => (d.cache = { ttlSecond: 5 }), 'policy.cache.ttlSecond', 'ttlSeconds'],
    [
      'permissions option',
      (d) => (d.permissions = { sorce: 'claims' }),
      'policy.permissions.sorce',
      'source',
    ],
    [
      'tenancy option',
      (d) => (d.tenancy = { pathParm: 'tenant' }),
      'policy.tenancy.pathParm',
      'pathParam',
    ],
    ['role key', (d) => (d.roles = { r: { grant: ['a:b'] } }), 'policy.roles.r.grant', 'grants'],
    [
      'grant key',
      grantWith({ permission: 'a:b', expire: 1 }),
      'policy.roles.r.grants[0].expire',
      'expires',
    ],
    [
      'required grant key',
      grantWith({ permision: 'a:b' }),
      'policy.roles.r.grants[0].permision',
      'permission',
    ],
    [
      'condition',
      grantWith({ permission: 'a:b', when: { ips: ['10.0.0.0/8'] } }),
      'policy.roles.r.grants[0].when.ips',
      'ip',
    ],
    [
      'time condition',
      grantWith({ permission: 'a:b', when: { time: { dys: ['mon'] } } }),
      'policy.roles.r.grants[0].when.time.dys',
      'days',
    ],
  ])('names a misspelt %s as written, with the name it meant', (_name, change, field, meant) => {
    const problem = problemOf(mutate(change));

    expect(problem.field).toBe(field);
    expect(problem.expected).toBe(`unknown field (did you mean ${meant}?)`);
  });

  it('lists the known fields for an unknown field that resembles none', () => {
    const problem = problemOf(mutate((d) => (d.cache = { color: 'blue' })));

    expect(problem.field).toBe('policy.cache.color');
    expect(problem.expected).toBe(
      'unknown field; expected one of ttlSeconds, negativeTtlSeconds, maxEntries, staleIfErrorSeconds',
    );
  });

  it('reports a missing field as missing when an unrelated unknown field is present', () => {
    const problem = problemOf(
      mutate((d) => {
        delete d.issuers[0].audiences;
        d.issuers[0].note = 'x';
      }),
    );

    expect(problem).toEqual({
      field: 'policy.issuers[0].audiences',
      expected: 'missing required field',
    });
  });

  it('still reports a wrongly typed grant at the grant', () => {
    const problem = problemOf(mutate(grantWith(7)));

    expect(problem.field).toBe('policy.roles.r.grants[0]');
  });
});

describe('policy scope mappings', () => {
  function claimsDoc(permissions: Doc): Doc {
    const doc = structuredClone(base()) as Doc;
    doc.permissions = { source: 'claims', ...permissions };
    doc.routes = [
      { method: 'GET', path: '/posts/:id', require: ['read:posts'] },
      { method: 'PUT', path: '/posts/:id', require: ['write:posts:{id}'] },
      { method: 'DELETE', path: '/posts/:id', anyOf: ['delete:posts:{id}', 'admin:posts'] },
    ];
    return doc;
  }

  function warningsOf(doc: Doc): string[] {
    const seen: string[] = [];
    compilePolicy(doc, { onWarning: (message) => seen.push(message) });
    return seen;
  }

  it.each<[string, Doc, string]>([
    [
      'a key with a space',
      { scopes: { 'read all': ['read:posts'] } },
      'policy.permissions.scopes.read all',
    ],
    [
      'a key with a backslash',
      { scopes: { 'a\\b': ['read:posts'] } },
      'policy.permissions.scopes.a\\b',
    ],
    ['an empty key', { scopes: { '': ['read:posts'] } }, 'policy.permissions.scopes.'],
    ['an empty list', { scopes: { read: [] } }, 'policy.permissions.scopes.read'],
    [
      'a target without a resource',
      { scopes: { read: ['read:posts', 'read'] } },
      'policy.permissions.scopes.read[1]',
    ],
    [
      'a target with a space',
      { scopes: { read: ['read posts'] } },
      'policy.permissions.scopes.read[0]',
    ],
    [
      'a partial-segment wildcard',
      { scopes: { read: ['read:po*'] } },
      'policy.permissions.scopes.read[0]',
    ],
    [
      'a target that is not a string',
      { scopes: { read: [1] } },
      'policy.permissions.scopes.read[0]',
    ],
    [
      'a mapping with no scope claim read',
      { scopeClaim: null, scopes: { read: ['read:posts'] } },
      'policy.permissions.scopes',
    ],
    [
      'a mapping with the store source',
      { source: 'store', scopes: { read: ['read:posts'] } },
      'policy.permissions.scopes',
    ],
  ])('rejects %s at compile, naming the field', (_name, permissions, field) => {
    const doc = claimsDoc(permissions);

    const field_ = fieldOf(() => compilePolicy(doc, { onWarning: () => {} }));

    expect(field_).toBe(field);
  });

  it('passes the mapping to the claims store options', () => {
    const doc = claimsDoc({ scopes: { read: ['read:posts'] } });

    const policy = compilePolicy(doc, { onWarning: () => {} });

    expect(policy.permissions).toMatchObject({
      source: 'claims',
      claims: { scopes: { read: ['read:posts'] } },
    });
  });

  it('warns once, naming every mapped permission no route requires', () => {
    const doc = claimsDoc({
      scopes: {
        read: ['read:posts', 'read:post'],
        'Orders.Read': ['read:orders'],
        write: ['write:posts:*'],
      },
    });

    const seen = warningsOf(doc);

    expect(seen).toHaveLength(1);
    expect(seen[0]).toContain('policy.permissions.scopes');
    expect(seen[0]).toContain('read → read:post,');
    expect(seen[0]).toContain('Orders.Read → read:orders');
    expect(seen[0]).not.toContain('read:posts');
    expect(seen[0]).not.toContain('write');
  });

  it.each<[string, string[]]>([
    ['an exact requirement', ['read:posts']],
    ['a template with its hole filled by a literal', ['write:posts:42']],
    ['a template with its hole filled by a wildcard', ['delete:posts:*']],
    ['a trailing wildcard', ['admin:*']],
    ['a leading wildcard', ['*:posts']],
    ['the full wildcard', ['*']],
  ])('does not warn for a mapping to %s some route can require', (_name, targets) => {
    const doc = claimsDoc({ scopes: { s: targets } });

    const seen = warningsOf(doc);

    expect(seen).toEqual([]);
  });

  it.each<[string, string[]]>([
    ['a permission longer than every requirement', ['read:posts:42']],
    ['a wildcard wider than the segments required', ['read:*:*']],
    ['a literal where a template has a different literal', ['write:drafts:*']],
  ])('warns for a mapping to %s', (_name, targets) => {
    const doc = claimsDoc({ scopes: { s: targets } });

    const seen = warningsOf(doc);

    expect(seen).toHaveLength(1);
  });

  it('exposes the warnings on the compiled policy', () => {
    const doc = claimsDoc({ scopes: { read: ['read:post'] } });

    const policy = compilePolicy(doc, { onWarning: () => {} });

    expect(policy.warnings).toEqual([expect.stringContaining('read → read:post')]);
  });

  it('prints the warning once by default when the same document is compiled twice', () => {
    const doc = claimsDoc({ scopes: { read: ['read:post'] } });
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    try {
      compilePolicy(doc, { env: {} });
      compilePolicy(doc, { env: { OTHER: 'x' } });

      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn.mock.calls[0]?.[0]).toMatch(/^gatehouse: configuration warning: .*read:post/);
    } finally {
      warn.mockRestore();
    }
  });
});

describe('policy text', () => {
  it('parses YAML', () => {
    const value = parsePolicyText('version: 1\nroutes: []\n', 'policy.yaml');
    expect(value).toEqual({ version: 1, routes: [] });
  });

  it('rejects a duplicated YAML key instead of keeping the last', () => {
    expect(() => parsePolicyText('version: 1\nversion: 2\n', 'policy.yaml')).toThrow(ConfigError);
  });

  it('reports invalid JSON as a ConfigError naming the file', () => {
    expect(fieldOf(() => parsePolicyText('{"version":', 'policy.json'))).toBe('policy.json');
  });

  it('compiles the example policy shipped in the repository', () => {
    const text = readFileSync(new URL('../../../examples/policy.yaml', import.meta.url), 'utf8');
    const policy = compilePolicy(parsePolicyText(text, 'policy.yaml'), { env: {} });
    expect(policy.routes.routes.length).toBeGreaterThan(3);
  });

  it('publishes a JSON Schema that matches the validator', () => {
    const committed = JSON.parse(
      readFileSync(new URL('../../../schema/policy.schema.json', import.meta.url), 'utf8'),
    );
    expect(committed).toEqual(policyJsonSchema());
  });
});
