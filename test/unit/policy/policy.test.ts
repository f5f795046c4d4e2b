import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
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
