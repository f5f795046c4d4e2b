import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/errors.ts';
import {
  createFileStore,
  exportPermissionData,
  FileStore,
  MemoryStore,
  parsePermissionData,
} from '../../../src/stores/index.ts';
import { expiryToUnixSeconds } from '../../../src/stores/permission-data.ts';

const EXAMPLE = JSON.stringify({
  roles: {
    reader: { grants: ['read:posts'] },
    editor: {
      inherits: ['reader'],
      grants: [
        'write:posts',
        {
          permission: 'publish:posts',
          when: {
            time: {
              days: ['mon', 'tue', 'wed', 'thu', 'fri'],
              hours: { from: '09:00', to: '17:00' },
              timezone: 'Europe/Berlin',
            },
          },
        },
      ],
    },
  },
  users: {
    alice: {
      grants: [{ permission: 'read:drafts', expires: '2026-12-31T00:00:00Z' }],
      denies: ['delete:posts:*'],
    },
  },
  user_roles: { alice: ['reader'], bob: [{ role: 'editor', expires: '2027-01-01T00:00:00Z' }] },
});

/** The ConfigError thrown by parsing `value` as a permission file. */
function parseError(value: unknown): ConfigError {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  try {
    parsePermissionData(text, 'permissions.json');
  } catch (error) {
    if (error instanceof ConfigError) return error;
    throw error;
  }
  throw new Error('expected parsePermissionData to throw');
}

describe('parsePermissionData', () => {
  it('parses the example file', () => {
    const text = EXAMPLE;

    const data = parsePermissionData(text);

    expect(data).toEqual({
      roles: {
        reader: { grants: ['read:posts'] },
        editor: {
          inherits: ['reader'],
          grants: [
            'write:posts',
            {
              permission: 'publish:posts',
              when: {
                time: {
                  days: ['mon', 'tue', 'wed', 'thu', 'fri'],
                  hours: { from: '09:00', to: '17:00' },
                  timezone: 'Europe/Berlin',
                },
              },
            },
          ],
        },
      },
      users: {
        alice: {
          grants: [{ permission: 'read:drafts', expires: 1798675200 }],
          denies: ['delete:posts:*'],
        },
      },
      user_roles: { alice: ['reader'], bob: [{ role: 'editor', expires: 1798761600 }] },
    });
  });

  it('converts an ISO expiry with an offset to Unix seconds', () => {
    const text = JSON.stringify({
      users: {
        alice: { grants: [{ permission: 'read:a', expires: '2026-12-31T01:00:00+01:00' }] },
      },
    });

    const data = parsePermissionData(text);

    expect(data.users.alice?.grants).toEqual([{ permission: 'read:a', expires: 1798675200 }]);
  });

  it('accepts a numeric expiry as Unix seconds', () => {
    const text = JSON.stringify({
      users: { alice: { grants: [{ permission: 'read:a', expires: 1798675200 }] } },
    });

    const data = parsePermissionData(text);

    expect(data.users.alice?.grants).toEqual([{ permission: 'read:a', expires: 1798675200 }]);
  });

  it('reads tenant sections alongside the untenanted ones', () => {
    const text = JSON.stringify({
      users: { alice: { grants: ['read:root'] } },
      tenants: { acme: { users: { alice: { grants: ['read:acme'] } } } },
    });

    const data = parsePermissionData(text);

    expect(data.tenants?.acme?.users.alice).toEqual({ grants: ['read:acme'] });
  });

  it('accepts an empty file object', () => {
    const text = '{}';

    const data = parsePermissionData(text);

    expect(data).toEqual({ users: {}, roles: {}, user_roles: {} });
  });

  it.each([
    ['bad JSON', '{"users": ', '(root)'],
    ['a non-object file', [], '(root)'],
    ['an unknown top-level key', { usres: {} }, 'usres'],
    [
      'a grant that is neither a string nor an object',
      { users: { alice: { grants: ['a', 'b', 42] } } },
      'users.alice.grants[2]',
    ],
    [
      'a grant with whitespace',
      { users: { alice: { grants: ['read posts'] } } },
      'users.alice.grants[0]',
    ],
    ['an empty grant', { roles: { r: { grants: [''] } } }, 'roles.r.grants[0]'],
    [
      'a malformed ISO expiry',
      { users: { alice: { grants: ['a', 'b', { permission: 'c', expires: '2026-13-01' }] } } },
      'users.alice.grants[2].expires',
    ],
    [
      'an impossible calendar date',
      { users: { alice: { grants: [{ permission: 'c', expires: '2026-02-30T00:00:00Z' }] } } },
      'users.alice.grants[0].expires',
    ],
    [
      'an ISO expiry without a zone',
      { users: { alice: { grants: [{ permission: 'c', expires: '2026-12-31T00:00:00' }] } } },
      'users.alice.grants[0].expires',
    ],
    [
      'a millisecond expiry',
      { users: { alice: { grants: [{ permission: 'c', expires: 1798675200000 }] } } },
      'users.alice.grants[0].expires',
    ],
    [
      'a fractional expiry',
      { users: { alice: { denies: [{ permission: 'c', expires: 1.5 }] } } },
      'users.alice.denies[0].expires',
    ],
    [
      'a misspelt grant key',
      { users: { alice: { grants: [{ permission: 'c', expire: 1 }] } } },
      'users.alice.grants[0].expire',
    ],
    [
      'a grant object without a permission',
      { users: { alice: { grants: [{ expires: 1 }] } } },
      'users.alice.grants[0].permission',
    ],
    [
      'when that is not an object',
      { roles: { r: { grants: [{ permission: 'c', when: 'weekdays' }] } } },
      'roles.r.grants[0].when',
    ],
    [
      'when that is an array',
      { roles: { r: { grants: [{ permission: 'c', when: [] }] } } },
      'roles.r.grants[0].when',
    ],
    ['a user entry that is an array', { users: { alice: [] } }, 'users.alice'],
    [
      'an unknown condition',
      { roles: { r: { grants: [{ permission: 'c', when: { weekday: ['mon'] } }] } } },
      'roles.r.grants[0].when.weekday',
    ],
    [
      'a bad weekday',
      { roles: { r: { grants: [{ permission: 'c', when: { time: { days: ['monday'] } } }] } } },
      'roles.r.grants[0].when.time.days[0]',
    ],
    [
      'a bad time zone',
      {
        roles: { r: { grants: [{ permission: 'c', when: { time: { timezone: 'Mars/Base' } } }] } },
      },
      'roles.r.grants[0].when.time.timezone',
    ],
    [
      'a user_roles value that is not an array',
      { user_roles: { bob: 'editor' } },
      'user_roles.bob',
    ],
    [
      'a user_roles entry of the wrong type',
      { user_roles: { bob: ['reader', 7] } },
      'user_roles.bob[1]',
    ],
    [
      'a role assignment with a bad expiry',
      { user_roles: { bob: [{ role: 'editor', expires: 'soon' }] } },
      'user_roles.bob[0].expires',
    ],
    [
      'inherits that is not an array',
      { roles: { editor: { inherits: 'reader' } } },
      'roles.editor.inherits',
    ],
    ['an unknown key in a tenant', { tenants: { acme: { groups: {} } } }, 'tenants.acme.groups'],
    [
      'a reserved subject name',
      JSON.parse('{"users": {"__proto__": {"grants": ["a"]}}}'),
      'users.__proto__',
    ],
    [
      'a reserved claim name in a condition',
      { roles: { r: { grants: [{ permission: 'c', when: { claims: { constructor: 'x' } } }] } } },
      'roles.r.grants[0].when.claims.constructor',
    ],
    [
      'a subject that needs quoting',
      { users: { 'a.b': { grants: [1] } } },
      'users["a.b"].grants[0]',
    ],
  ])('rejects %s with a ConfigError naming the field', (_case, value, field) => {
    const input = value;

    const error = parseError(input);

    expect(error.field).toBe(field);
  });

  it.each([
    [
      'a deny outside the grammar',
      { users: { alice: { denies: ['delete'] } } },
      'users.alice.denies[0]',
    ],
    [
      'a grant with a partial wildcard',
      { users: { alice: { grants: ['read:*x'] } } },
      'users.alice.grants[0]',
    ],
    [
      'a grant object outside the grammar',
      { users: { alice: { grants: [{ permission: 'read::x', expires: 1 }] } } },
      'users.alice.grants[0].permission',
    ],
    [
      'a role grant outside the grammar',
      { roles: { r: { grants: ['read:a|b'] } } },
      'roles.r.grants[0]',
    ],
    [
      'a role deny outside the grammar in a tenant',
      { tenants: { acme: { roles: { r: { grants: [], denies: ['drop'] } } } } },
      'tenants.acme.roles.r.denies[0]',
    ],
    [
      'a CIDR with host bits set',
      { users: { alice: { grants: [{ permission: 'read:a', when: { ip: ['10.0.0.1/8'] } }] } } },
      'users.alice.grants[0].when.ip[0]',
    ],
    [
      'a CIDR that is no address',
      { roles: { r: { denies: [{ permission: 'read:a', when: { ip: ['10.0.0.0/8', 'x/8'] } }] } } },
      'roles.r.denies[0].when.ip[1]',
    ],
    [
      'an empty when',
      { users: { alice: { grants: [{ permission: 'read:a', when: {} }] } } },
      'users.alice.grants[0].when',
    ],
    [
      'an empty ip list',
      { users: { alice: { denies: [{ permission: 'read:a', when: { ip: [] } }] } } },
      'users.alice.denies[0].when.ip',
    ],
    [
      'an empty time',
      { users: { alice: { grants: [{ permission: 'read:a', when: { time: {} } }] } } },
      'users.alice.grants[0].when.time',
    ],
    [
      'hours with from equal to to',
      {
        users: {
          alice: {
            grants: [
              { permission: 'read:a', when: { time: { hours: { from: '09:00', to: '09:00' } } } },
            ],
          },
        },
      },
      'users.alice.grants[0].when.time.hours',
    ],
    [
      'hours from 24:00',
      {
        users: {
          alice: {
            grants: [
              { permission: 'read:a', when: { time: { hours: { from: '24:00', to: '09:00' } } } },
            ],
          },
        },
      },
      'users.alice.grants[0].when.time.hours.from',
    ],
    [
      'a lower-case country',
      { users: { alice: { grants: [{ permission: 'read:a', when: { country: ['de'] } }] } } },
      'users.alice.grants[0].when.country[0]',
    ],
    [
      'an unknown parent role',
      { roles: { editor: { inherits: ['reader', 'nope'] }, reader: {} } },
      'roles.editor.inherits[1]',
    ],
    [
      'an unknown parent role in a tenant',
      { tenants: { acme: { roles: { editor: { inherits: ['nope'] } } } } },
      'tenants.acme.roles.editor.inherits[0]',
    ],
    [
      'a parent defined only in another section',
      { roles: { reader: {} }, tenants: { acme: { roles: { editor: { inherits: ['reader'] } } } } },
      'tenants.acme.roles.editor.inherits[0]',
    ],
    [
      'an inheritance cycle',
      { roles: { a: { inherits: ['b'] }, b: { inherits: ['a'] } } },
      'roles',
    ],
    ['a role that inherits itself', { roles: { a: { inherits: ['a'] } } }, 'roles'],
    [
      'an inheritance cycle in a tenant',
      { tenants: { acme: { roles: { a: { inherits: ['b'] }, b: { inherits: ['a'] } } } } },
      'tenants.acme.roles',
    ],
  ])('rejects %s, which would fail at request time, naming the field', (_case, value, field) => {
    const error = parseError(value);

    expect(error.field).toBe(field);
  });

  it('names the cycle and the source in the message', () => {
    const error = parseError({ roles: { a: { inherits: ['b'] }, b: { inherits: ['a'] } } });

    expect(error.message).toMatch(/a -> b -> a.*permissions\.json/);
  });

  it('accepts parents named in knownRoles (the policy roles)', () => {
    const text = JSON.stringify({
      roles: { auditor: { inherits: ['reader'] } },
      tenants: { acme: { roles: { editor: { inherits: ['reader', 'auditor2'] }, auditor2: {} } } },
    });

    const data = parsePermissionData(text, undefined, { knownRoles: ['reader', 'reader'] });

    expect(data.roles.auditor?.inherits).toEqual(['reader']);
  });

  it('still finds a cycle through a role that shadows a known role', () => {
    const text = JSON.stringify({
      roles: { reader: { inherits: ['auditor'] }, auditor: { inherits: ['reader'] } },
    });

    const parse = () => parsePermissionData(text, undefined, { knownRoles: ['reader'] });

    expect(parse).toThrow(expect.objectContaining({ field: 'roles' }));
  });

  it('passes knownRoles through createFileStore', async () => {
    const text = JSON.stringify({ roles: { auditor: { inherits: ['reader'] } } });

    const store = createFileStore(text, 'permissions.json', { knownRoles: ['reader'] });

    expect((await store.getRoles(undefined)).map((role) => role.name)).toEqual(['auditor']);
  });

  it('accepts hours.to 24:00, as the permissions module does', () => {
    const when = { time: { days: ['fri'], hours: { from: '22:00', to: '24:00' } } };
    const text = JSON.stringify({ users: { alice: { grants: [{ permission: 'read:a', when }] } } });

    const data = parsePermissionData(text);

    expect(data.users.alice?.grants).toEqual([{ permission: 'read:a', when }]);
  });

  it('names the expected form and the source in the message', () => {
    const input = { users: { alice: { grants: [{ permission: 'c', expires: 'soon' }] } } };

    const error = parseError(input);

    expect(error.message).toMatch(/ISO 8601.*Unix seconds.*permissions\.json/);
  });
});

describe('duplicate entries', () => {
  it.each([
    [
      { users: { bob: { denies: ['x:y', { permission: 'x:y', expires: 4102444800 }] } } },
      'users.bob.denies[1]',
    ],
    [
      {
        users: {
          bob: {
            grants: [
              { permission: 'x:y', when: { ip: ['10.0.0.0/8'], country: ['DE'] } },
              { permission: 'x:y', when: { country: ['DE'], ip: ['10.0.0.0/8'] } },
            ],
          },
        },
      },
      'users.bob.grants[1]',
    ],
    [{ roles: { r: { grants: ['a:b', 'a:b'] } } }, 'roles.r.grants[1]'],
    [
      {
        user_roles: { bob: ['reader', { role: 'reader', expires: 4102444800 }] },
        roles: { reader: {} },
      },
      'user_roles.bob[1]',
    ],
    [
      { tenants: { acme: { users: { bob: { grants: ['a:b', 'a:b'] } } } } },
      'tenants.acme.users.bob.grants[1]',
    ],
  ])('refuses %j at %s (a store keeps one item per grant)', (data, field) => {
    expect(() => parsePermissionData(JSON.stringify(data))).toThrow(
      expect.objectContaining({ field }),
    );
  });

  it('accepts the same permission with other conditions', () => {
    const data = {
      users: { bob: { grants: ['x:y', { permission: 'x:y', when: { ip: ['10.0.0.0/8'] } }] } },
    };
    expect(parsePermissionData(JSON.stringify(data)).users.bob?.grants).toHaveLength(2);
  });
});

describe('expiryToUnixSeconds', () => {
  it.each([
    [1798675200, 1798675200],
    [0, 0],
    [253402300799, 253402300799],
    ['2026-12-31T00:00:00Z', 1798675200],
    ['2026-12-31T01:00:00+01:00', 1798675200],
    ['2026-12-31T00:00:00.999Z', 1798675200],
    ['2026-12-31T00:00Z', 1798675200],
  ])('reads %j as %d', (value, seconds) => {
    expect(expiryToUnixSeconds(value, 'grants[0].expires')).toBe(seconds);
  });

  it.each([
    ['an impossible date', '2026-02-30T00:00:00Z'],
    ['milliseconds', 1798675200000],
    ['a negative number', -1],
    ['a fraction', 1.5],
    ['NaN', Number.NaN],
    ['a time without a zone', '2026-12-31T00:00:00'],
    ['a date only', '2026-12-31'],
    ['hour 24', '2026-12-31T24:00:00Z'],
    ['a leap second', '2026-12-31T23:59:60Z'],
    ['an offset beyond 23 hours', '2026-12-31T00:00:00+24:00'],
  ])('refuses %s with a ConfigError naming the field', (_case, value) => {
    const read = () => expiryToUnixSeconds(value, 'policy.roles.r.grants[0].expires');

    expect(read).toThrow(ConfigError);
    expect(read).toThrow(expect.objectContaining({ field: 'policy.roles.r.grants[0].expires' }));
  });
});

describe('FileStore', () => {
  it('answers with the records of the file', async () => {
    const store = createFileStore(EXAMPLE);

    const record = await store.getUser({ subject: 'bob' });

    expect(record).toEqual({
      subject: 'bob',
      roles: [{ role: 'editor', expiresAt: 1798761600 }],
      grants: [],
      denies: [],
    });
  });

  it('converts expiry to expiresAt on grants', async () => {
    const store = createFileStore(EXAMPLE);

    const record = await store.getUser({ subject: 'alice' });

    expect(record?.grants).toEqual([{ permission: 'read:drafts', expiresAt: 1798675200 }]);
  });

  it('loads role definitions', async () => {
    const store = createFileStore(EXAMPLE);

    const roles = await store.getRoles(undefined);

    expect(roles.find((role) => role.name === 'editor')?.inherits).toEqual(['reader']);
  });

  it('keeps tenant records apart from untenanted ones', async () => {
    const store = createFileStore(
      JSON.stringify({ tenants: { acme: { users: { alice: { grants: ['read:acme'] } } } } }),
    );

    const record = await store.getUser({ subject: 'alice' });

    expect(record).toBeNull();
  });

  it('reports its kind as file', () => {
    const store = createFileStore('{}');

    const kind = store.kind;

    expect(kind).toBe('file');
  });

  it('validates hand-built data', () => {
    const data = { users: { alice: { grants: [''] } }, roles: {}, user_roles: {} };

    const build = () => new FileStore(data);

    expect(build).toThrow(ConfigError);
  });
});

describe('exportPermissionData', () => {
  it('exports the demo-style data again after the deeper checks', () => {
    const text = JSON.stringify({
      users: {
        alice: {
          grants: [{ permission: 'read:stats', when: { ip: ['127.0.0.0/8', '::1/128'] } }],
        },
      },
      user_roles: { alice: ['reader'] },
    });

    const exported = exportPermissionData(createFileStore(text));

    expect(parsePermissionData(JSON.stringify(exported))).toEqual(parsePermissionData(text));
  });

  it('refuses to export a grant with an unknown key rather than drop it', () => {
    const store = new MemoryStore();
    store.putUser({
      subject: 'alice',
      roles: [],
      grants: [{ permission: 'read:a', expires: 1 } as never],
      denies: [],
    });

    const exported = () => exportPermissionData(store);

    expect(exported).toThrow(ConfigError);
    expect(exported).toThrow(expect.objectContaining({ field: 'users.alice.grants[0].expires' }));
  });

  it('refuses to export a tenant role assignment with an unknown key', () => {
    const store = new MemoryStore();
    store.putUser({
      subject: 'bob',
      tenant: 'acme',
      roles: [{ role: 'editor', until: 1 } as never],
      grants: [],
      denies: [],
    });

    const exported = () => exportPermissionData(store);

    expect(exported).toThrow(
      expect.objectContaining({ field: 'tenants.acme.user_roles.bob[0].until' }),
    );
  });

  it('round-trips: parse, load, export, parse again gives equal data', () => {
    const text = JSON.stringify({
      ...JSON.parse(EXAMPLE),
      users: { ...JSON.parse(EXAMPLE).users, carol: {} },
      tenants: {
        acme: {
          roles: {
            admin: { grants: ['*'], denies: [{ permission: 'drop:db', expires: 1798675200 }] },
          },
          user_roles: { dave: ['admin'] },
        },
      },
    });
    const data = parsePermissionData(text);

    const exported = exportPermissionData(createFileStore(text));

    expect(parsePermissionData(JSON.stringify(exported))).toEqual(data);
  });

  it('exports a subject that has nothing but a record', () => {
    const store = createFileStore(JSON.stringify({ users: { carol: {} } }));

    const exported = exportPermissionData(store);

    expect(exported.users).toEqual({ carol: {} });
  });
});
