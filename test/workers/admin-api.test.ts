/**
 * The admin Worker (src/workers/admin.ts, handlers/admin-worker.ts's logic) inside workerd against
 * the real local KV binding: authentication and the admin:permissions rule (tenant-scoped too),
 * changes that the guard then applies, strict input validation that writes nothing, the explain
 * check and the audit trail, its configuration, and the guard handing it <prefix>/v1/admin over
 * the ADMIN binding. Admin callers get their permission from seeded permission data, like anyone
 * else. test/workers/admin-forward.test.ts checks what crosses a real service binding.
 */
import { env } from 'cloudflare:workers';
import { beforeEach, describe, expect, it } from 'vitest';
import type { AdminStore, AuditRecord } from '../../src/admin/types.ts';
import { createAdminWorker } from '../../src/workers/admin.ts';
import type { KvNamespaceLike } from '../../src/workers/kv-store.ts';
import { DEMO_ISSUER } from '../support/cases.ts';
import {
  bearer,
  DEMO_POLICY,
  demoTokenFor,
  instrumentedKv,
  seedDemo,
  TENANT_POLICY,
  type TestAdmin,
  type TestGuard,
  tenantToken,
  testAdmin,
  testContext,
  testGuard,
} from './helpers.ts';

const BASE = '/.gatehouse/v1/admin';

interface Problem {
  type: string;
  status: number;
  reason: string;
  detail: string;
  field?: string;
}

interface Change {
  changed: boolean;
  before: unknown;
  after: { grants?: { permission: string }[]; roles?: { role: string }[] } | null;
  audit: { id: string; time: string } | null;
}

let counter = 0;
/** A subject no other test touches (KV persists between the tests of a file). */
function fresh(name: string): string {
  return `${name}-${Date.now().toString(36)}-${++counter}`;
}

beforeEach(async () => {
  await seedDemo();
  const kv = env.PERMISSIONS;
  // Admins, by permission data: everything, one tenant only, and a tenant's own admin.
  await kv.put('user/-/s:root', JSON.stringify({ grants: ['admin:permissions'] }));
  await kv.put('user/-/s:acme-admin', JSON.stringify({ grants: ['admin:permissions:acme'] }));
  await kv.put('roles/t:acme', JSON.stringify({ tadmin: { grants: ['*'] } }));
  await kv.put('user/t:acme/s:mallory', JSON.stringify({ roles: ['tadmin'] }));
});

interface Setup {
  readonly admin: TestAdmin;
  readonly store: AdminStore;
  /**
   * A guard isolate with nothing cached yet. The admin Worker cannot reach the guard's caches: a
   * running guard isolate sees a change within the revocation delay, a fresh one at once.
   */
  guard(): TestGuard;
  call(
    method: string,
    path: string,
    options?: { token?: string | null; body?: unknown; headers?: Record<string, string> },
  ): Promise<Response>;
}

/**
 * The admin Worker over the test KV binding. `callerKv` replaces the binding the caller check
 * reads through (changes and the audit trail still use the real one).
 */
function setup(options: { policy?: unknown; callerKv?: KvNamespaceLike } = {}): Setup {
  const callerKv = options.callerKv;
  const policy = options.policy !== undefined ? { policy: options.policy } : {};
  const admin = testAdmin(
    {},
    { ...policy, ...(callerKv !== undefined && { wrapKv: () => callerKv }) },
  );
  const { store } = admin.worker.runtime(admin.env);
  return {
    admin,
    store,
    guard: () => testGuard({}, policy),
    async call(method, path, { token, body, headers } = {}) {
      const init: RequestInit = {
        method,
        headers: {
          ...(body !== undefined && { 'content-type': 'application/json' }),
          ...(token && bearer(token)),
          ...headers,
        },
        ...(body !== undefined && { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      };
      return admin.fetch(`${BASE}${path}`, init);
    },
  };
}

async function problemOf(response: Response): Promise<Problem> {
  expect(response.headers.get('content-type')).toBe('application/problem+json');
  return (await response.json()) as Problem;
}

async function auditFor(s: Setup, subject: string, tenant?: string): Promise<AuditRecord[]> {
  return [...(await s.store.listAudit({ since: 0, subject, ...(tenant && { tenant }) }))];
}

describe('admin API authentication and authorization', () => {
  it('answers 401 with a challenge without a token, before looking at the body', async () => {
    const s = setup();
    const response = await s.call('POST', '/users/dave/grants', { body: { nonsense: true } });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Bearer realm="gatehouse"');
    expect((await problemOf(response)).reason).toBe('token_missing');
  });

  it('answers 401 naming the token error for a bad token', async () => {
    const s = setup();
    const [header, payload, signature] = (await demoTokenFor('root')).split('.');
    const tampered = `${header}.${payload}.${signature!.startsWith('A') ? 'B' : 'A'}${signature!.slice(1)}`;
    const response = await s.call('GET', '/users/dave', { token: tampered });
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toContain('error="invalid_token"');
    expect((await problemOf(response)).reason).toBe('token_invalid_signature');
  });

  it('refuses a caller without admin:permissions with 403 and writes nothing', async () => {
    const s = setup();
    const subject = fresh('dave');
    const alice = await demoTokenFor('alice');
    const response = await s.call('POST', `/users/${subject}/grants`, {
      token: alice,
      body: { permission: 'read:stats' },
    });
    expect(response.status).toBe(403);
    expect((await problemOf(response)).reason).toBe('missing_permission');
    expect(await s.store.readUser({ subject })).toBeNull();
    expect(await auditFor(s, subject)).toEqual([]);
  });

  it('refuses a 403 caller before validating the body', async () => {
    const s = setup();
    const response = await s.call('POST', '/users/x/grants', {
      token: await demoTokenFor('alice'),
      body: '{not json',
    });
    expect(response.status).toBe(403);
  });

  it('lets admin:permissions:acme manage tenant acme only', async () => {
    const s = setup();
    const subject = fresh('ann');
    const token = await demoTokenFor('acme-admin');
    const inAcme = await s.call('POST', `/users/${subject}/grants?tenant=acme`, {
      token,
      body: { permission: 'read:posts' },
    });
    const untenanted = await s.call('POST', `/users/${subject}/grants`, {
      token,
      body: { permission: 'read:posts' },
    });
    const globex = await s.call('POST', `/users/${subject}/grants?tenant=globex`, {
      token,
      body: { permission: 'read:posts' },
    });
    expect(inAcme.status).toBe(201);
    expect(untenanted.status).toBe(403);
    expect(globex.status).toBe(403);
    expect((await problemOf(globex)).reason).toBe('missing_permission');
    expect(await s.store.readUser({ subject, tenant: 'acme' })).toMatchObject({
      grants: [{ permission: 'read:posts' }],
    });
    expect(await s.store.readUser({ subject })).toBeNull();
    expect(await s.store.readUser({ subject, tenant: 'globex' })).toBeNull();
  });

  it("keeps a tenant's own admin (grants: ['*']) inside its tenant", async () => {
    const s = setup({ policy: TENANT_POLICY });
    const subject = fresh('ann');
    const token = await tenantToken('mallory', 'acme');
    // No ?tenant=: the caller's own tenant.
    const own = await s.call('POST', `/users/${subject}/grants`, {
      token,
      body: { permission: 'read:posts' },
    });
    const other = await s.call('POST', `/users/${subject}/grants?tenant=globex`, {
      token,
      body: { permission: 'read:posts' },
    });
    expect(own.status).toBe(201);
    expect(await s.store.readUser({ subject, tenant: 'acme' })).not.toBeNull();
    expect(other.status).toBe(403);
    expect(await problemOf(other)).toMatchObject({ reason: 'tenant_mismatch', field: 'tenant' });
    expect(await s.store.readUser({ subject, tenant: 'globex' })).toBeNull();
  });

  it('honours an explicit deny of the tenant permission', async () => {
    await env.PERMISSIONS.put(
      'user/-/s:half-admin',
      JSON.stringify({ grants: ['admin:permissions'], denies: ['admin:permissions:acme'] }),
    );
    const s = setup();
    const token = await demoTokenFor('half-admin');
    const acme = await s.call('GET', '/users/ann?tenant=acme', { token });
    const globex = await s.call('GET', '/users/ann?tenant=globex', { token });
    expect(acme.status).toBe(403);
    expect((await problemOf(acme)).reason).toBe('explicit_deny');
    expect(globex.status).toBe(200);
  });

  it('answers 503 with Retry-After when the store cannot be read', async () => {
    const { kv, state } = instrumentedKv();
    const s = setup({ callerKv: kv });
    state.failing = true;
    const response = await s.call('GET', '/users/dave', { token: await demoTokenFor('root') });
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('5');
    expect((await problemOf(response)).reason).toBe('store_unavailable');
  });
});

describe('admin API changes', () => {
  it('grants a permission that the guard then allows, and revokes it again', async () => {
    const s = setup();
    const subject = fresh('dave');
    const root = await demoTokenFor('root');
    const user = await demoTokenFor(subject);
    expect((await s.guard().fetch('/drafts', { headers: bearer(user) })).status).toBe(403);

    const granted = await s.call('POST', `/users/${subject}/grants`, {
      token: root,
      body: { permission: 'read:drafts', expires: '2h' },
    });
    expect(granted.status).toBe(201);
    const change = (await granted.json()) as Change;
    expect(change).toMatchObject({ changed: true, before: null });
    expect(change.after?.grants?.[0]?.permission).toBe('read:drafts');
    expect(change.audit?.id).toMatch(/^\d{4}-\d{2}-\d{2}T/);
    expect((await s.guard().fetch('/drafts', { headers: bearer(user) })).status).toBe(200);

    const revoked = await s.call('DELETE', `/users/${subject}/grants/read:drafts`, { token: root });
    expect(revoked.status).toBe(200);
    expect(((await revoked.json()) as Change).changed).toBe(true);
    expect((await s.guard().fetch('/drafts', { headers: bearer(user) })).status).toBe(403);
  });

  it('answers 200 unchanged (no audit) for a grant that is already there', async () => {
    const s = setup();
    const subject = fresh('dave');
    const root = await demoTokenFor('root');
    const body = { permission: 'read:stats' };
    expect((await s.call('POST', `/users/${subject}/grants`, { token: root, body })).status).toBe(
      201,
    );
    const again = await s.call('POST', `/users/${subject}/grants`, { token: root, body });
    expect(again.status).toBe(200);
    expect(await again.json()).toMatchObject({ changed: false, audit: null });
    expect(await auditFor(s, subject)).toHaveLength(1);
  });

  it('answers 404 naming the permission when revoking what is not granted', async () => {
    const s = setup();
    const response = await s.call('DELETE', '/users/alice/grants/write:nothing', {
      token: await demoTokenFor('root'),
    });
    expect(response.status).toBe(404);
    expect(await problemOf(response)).toMatchObject({ reason: 'not_found', field: 'permission' });
  });

  it('denies, and the deny wins over a role grant until it is removed', async () => {
    const s = setup();
    const subject = fresh('ed');
    const root = await demoTokenFor('root');
    const user = await demoTokenFor(subject);
    await s.call('POST', `/users/${subject}/roles`, { token: root, body: { role: 'reader' } });
    expect((await s.guard().fetch('/posts/1', { headers: bearer(user) })).status).toBe(200);
    const denied = await s.call('POST', `/users/${subject}/denies`, {
      token: root,
      body: { permission: 'read:posts' },
    });
    expect(denied.status).toBe(201);
    expect((await s.guard().fetch('/posts/1', { headers: bearer(user) })).status).toBe(403);
    const undone = await s.call('DELETE', `/users/${subject}/denies/read:posts`, { token: root });
    expect(undone.status).toBe(200);
    expect((await s.guard().fetch('/posts/1', { headers: bearer(user) })).status).toBe(200);
    const unassigned = await s.call('DELETE', `/users/${subject}/roles/reader`, { token: root });
    expect(unassigned.status).toBe(200);
    expect((await s.guard().fetch('/posts/1', { headers: bearer(user) })).status).toBe(403);
  });

  it('addresses subjects holding : / % and spaces through percent-encoded path segments', async () => {
    const s = setup();
    const subject = `svc:a/b %41 ${fresh('x')}`;
    const root = await demoTokenFor('root');
    const path = `/users/${encodeURIComponent(subject)}`;
    const granted = await s.call('POST', `${path}/grants`, {
      token: root,
      body: { permission: 'read:stats' },
    });
    expect(granted.status).toBe(201);
    expect(await s.store.readUser({ subject })).not.toBeNull();
    const shown = await s.call('GET', path, { token: root });
    expect(await shown.json()).toMatchObject({ subject, record: { subject } });
  });

  it('shows the stored record and the effective permissions with where they come from', async () => {
    const s = setup();
    const response = await s.call('GET', '/users/alice', { token: await demoTokenFor('root') });
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      subject: string;
      record: { roles: { role: string }[] };
      effective: { permission: string; via: unknown; expired: boolean }[];
    };
    expect(body.subject).toBe('alice');
    expect(body.record.roles).toEqual([{ role: 'reader' }]);
    expect(body.effective).toContainEqual(
      expect.objectContaining({ permission: 'read:posts', via: ['reader'], expired: false }),
    );
    expect(body.effective).toContainEqual(
      expect.objectContaining({ permission: 'read:stats', via: 'direct' }),
    );
  });

  it('creates, lists, shows and removes store roles; assignments then apply', async () => {
    const s = setup();
    const root = await demoTokenFor('root');
    const subject = fresh('gil');
    const user = await demoTokenFor(subject);
    const role = fresh('auditor');
    const put = await s.call('PUT', `/roles/${role}`, {
      token: root,
      body: { grants: ['read:stats', { permission: 'read:drafts', expires: '1d' }] },
    });
    expect(put.status).toBe(201);
    const listed = (await (await s.call('GET', '/roles', { token: root })).json()) as {
      roles: { name: string; source: string }[];
      policyRoles: string[];
    };
    expect(listed.roles).toContainEqual(expect.objectContaining({ name: role, source: 'store' }));
    expect(listed.policyRoles).toEqual(['reader', 'editor', 'admin']);
    const policyRole = await s.call('GET', '/roles/editor', { token: root });
    expect(await policyRole.json()).toMatchObject({ name: 'editor', source: 'policy' });

    await s.call('POST', `/users/${subject}/roles`, { token: root, body: { role } });
    expect((await s.guard().fetch('/drafts', { headers: bearer(user) })).status).toBe(200);
    const removed = await s.call('DELETE', `/roles/${role}`, { token: root });
    expect(removed.status).toBe(200);
    expect((await s.call('GET', `/roles/${role}`, { token: root })).status).toBe(404);
    expect((await s.guard().fetch('/drafts', { headers: bearer(user) })).status).toBe(403);
  });
});

describe('admin API input validation', () => {
  const cases: [string, string, string, unknown, string][] = [
    ['a malformed permission', 'POST', 'grants', { permission: 'read' }, 'permission'],
    ['an unknown key', 'POST', 'grants', { permission: 'read:x', expiry: '1h' }, 'expiry'],
    [
      'a bad CIDR',
      'POST',
      'grants',
      { permission: 'read:x', when: { ip: ['10.0.0.0/33'] } },
      'when.ip[0]',
    ],
    [
      'an unknown condition',
      'POST',
      'denies',
      { permission: 'read:x', when: { ipp: ['10.0.0.0/8'] } },
      'when.ipp',
    ],
    [
      'a past expiry',
      'POST',
      'grants',
      { permission: 'read:x', expires: '2001-01-01T00:00:00Z' },
      'expires',
    ],
    [
      'an expiry without zone',
      'POST',
      'grants',
      { permission: 'read:x', expires: '2031-01-01T00:00:00' },
      'expires',
    ],
    ['an unknown role', 'POST', 'roles', { role: 'no-such-role' }, 'role'],
    [
      'a role assignment with an unknown key',
      'POST',
      'roles',
      { role: 'reader', until: 1 },
      'until',
    ],
    ['a body that is not an object', 'POST', 'grants', ['read:x'], '(body)'],
  ];

  for (const [what, method, resource, body, field] of cases) {
    it(`refuses ${what} with 400 naming ${field}, and writes nothing`, async () => {
      const s = setup();
      const subject = fresh('val');
      const response = await s.call(method, `/users/${subject}/${resource}`, {
        token: await demoTokenFor('root'),
        body,
      });
      expect(response.status).toBe(400);
      const problem = await problemOf(response);
      expect(problem).toMatchObject({ reason: 'invalid_request', field });
      expect(problem.detail.startsWith(`${field}: `)).toBe(true);
      expect(await s.store.readUser({ subject })).toBeNull();
      expect(await auditFor(s, subject)).toEqual([]);
    });
  }

  it('refuses a role cycle with 400 naming inherits and keeps the roles as they were', async () => {
    const s = setup();
    const root = await demoTokenFor('root');
    const a = fresh('ra');
    const b = fresh('rb');
    expect(
      (await s.call('PUT', `/roles/${a}`, { token: root, body: { grants: ['read:x'] } })).status,
    ).toBe(201);
    expect(
      (await s.call('PUT', `/roles/${b}`, { token: root, body: { inherits: [a] } })).status,
    ).toBe(201);
    const cycle = await s.call('PUT', `/roles/${a}`, { token: root, body: { inherits: [b] } });
    expect(cycle.status).toBe(400);
    expect(await problemOf(cycle)).toMatchObject({ reason: 'invalid_request', field: 'inherits' });
    const stored = (await s.store.readRoles(undefined)).find((r) => r.name === a);
    expect(stored).toMatchObject({ inherits: [], grants: [{ permission: 'read:x' }] });
  });

  it('refuses a role inheriting an unknown role, naming the entry', async () => {
    const s = setup();
    const response = await s.call('PUT', `/roles/${fresh('r')}`, {
      token: await demoTokenFor('root'),
      body: { inherits: ['reader', 'nope'] },
    });
    expect(await problemOf(response)).toMatchObject({ field: 'inherits[1]' });
  });

  it('refuses bodies that are not JSON (415), too large (413), or repeat a key (400)', async () => {
    const s = setup();
    const token = await demoTokenFor('root');
    const text = await s.call('POST', '/users/x/grants', {
      token,
      body: 'permission=read:x',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
    });
    expect(text.status).toBe(415);
    const large = await s.call('POST', '/users/x/grants', {
      token,
      body: { permission: 'read:x', pad: 'x'.repeat(70_000) },
    });
    expect(large.status).toBe(413);
    const repeated = await s.call('POST', '/users/x/grants', {
      token,
      body: '{"permission":"read:x","permission":"write:x"}',
    });
    expect(repeated.status).toBe(400);
    expect(await s.store.readUser({ subject: 'x' })).toBeNull();
  });

  it('refuses unknown or repeated query parameters (a misspelt tenant must not fall back)', async () => {
    const s = setup();
    const token = await demoTokenFor('root');
    const typo = await s.call('POST', '/users/x/grants?tennant=acme', {
      token,
      body: { permission: 'read:x' },
    });
    expect(await problemOf(typo)).toMatchObject({ status: 400, field: 'tennant' });
    const twice = await s.call('GET', '/users/x?tenant=acme&tenant=globex', { token });
    expect(await problemOf(twice)).toMatchObject({ status: 400, field: 'tenant' });
    expect(await s.store.readUser({ subject: 'x' })).toBeNull();
  });

  it('answers 404 for unknown resources and 405 with Allow for wrong methods', async () => {
    const s = setup();
    const token = await demoTokenFor('root');
    expect((await s.call('GET', '/nothing', { token })).status).toBe(404);
    const wrong = await s.call('PATCH', '/roles/reader', { token, body: {} });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('GET, PUT, DELETE');
  });
});

describe('admin API record size bound', () => {
  const grants = (n: number) => Array.from({ length: n }, (_, i) => `read:g${i}`);

  it.each([
    ['a grant', 'grants', { permission: 'read:more' }],
    ['a deny', 'denies', { permission: 'read:more' }],
    ['a role assignment', 'roles', { role: 'reader' }],
  ])(
    'refuses %s that would grow a full record with 409 record_too_large',
    async (_n, path, body) => {
      const s = setup();
      const subject = fresh('full');
      const value = JSON.stringify({ grants: grants(10_000) });
      await env.PERMISSIONS.put(`user/-/s:${subject}`, value);

      const response = await s.call('POST', `/users/${subject}/${path}`, {
        token: await demoTokenFor('root'),
        body,
      });

      expect(response.status).toBe(409);
      expect(await problemOf(response)).toMatchObject({
        reason: 'record_too_large',
        field: 'subject',
      });
      expect(await env.PERMISSIONS.get(`user/-/s:${subject}`)).toBe(value);
      expect(await auditFor(s, subject)).toHaveLength(0);
    },
  );

  it("refuses a role that would grow a tenant's full role set with 409", async () => {
    const s = setup();
    const tenant = fresh('t');
    // One entry for the role itself, 9,999 for its grants.
    const value = JSON.stringify({ big: { grants: grants(9_999) } });
    await env.PERMISSIONS.put(`roles/t:${tenant}`, value);

    const response = await s.call('PUT', `/roles/extra?tenant=${tenant}`, {
      token: await demoTokenFor('root'),
      body: { grants: ['read:x'] },
    });

    expect(response.status).toBe(409);
    expect(await problemOf(response)).toMatchObject({ reason: 'record_too_large', field: 'role' });
    expect(await env.PERMISSIONS.get(`roles/t:${tenant}`)).toBe(value);
  });
});

describe('admin API explain check and audit trail', () => {
  it('explains a decision for a subject with the trace behind it', async () => {
    const s = setup();
    const response = await s.call('POST', '/check', {
      token: await demoTokenFor('root'),
      body: { subject: 'bob', method: 'DELETE', path: '/posts/9' },
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as {
      answer: { allow: boolean; reason: string; route: string };
      trace: { route: string; required: string[] };
    };
    expect(body.answer).toMatchObject({ allow: false, reason: 'explicit_deny' });
    expect(body.trace).toMatchObject({ route: 'DELETE /posts/:id' });
    expect(JSON.stringify(body)).not.toContain('eyJ');
  });

  it('explains a token without echoing it, and refuses a token of another tenant', async () => {
    const s = setup({ policy: TENANT_POLICY });
    const root = await demoTokenFor('root');
    const subjectToken = await demoTokenFor('alice');
    const response = await s.call('POST', '/check', {
      token: root,
      body: { token: subjectToken, method: 'GET', path: '/posts/1' },
    });
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(text).not.toContain(subjectToken);
    expect(JSON.parse(text)).toMatchObject({ answer: { allow: true } });
    const acmeToken = await tenantToken('ann', 'acme');
    const other = await s.call('POST', '/check', {
      token: root,
      body: { token: acmeToken, method: 'GET', path: '/posts/1' },
    });
    expect(await problemOf(other)).toMatchObject({ reason: 'tenant_mismatch', field: 'token' });
  });

  it('writes one audit record per change with actor, before and after, listed by GET /audit', async () => {
    const s = setup();
    const subject = fresh('hal');
    const root = await demoTokenFor('root');
    await s.call('POST', `/users/${subject}/grants`, {
      token: root,
      body: { permission: 'read:stats' },
    });
    await s.call('DELETE', `/users/${subject}/grants/read:stats`, { token: root });
    const response = await s.call('GET', `/audit?subject=${encodeURIComponent(subject)}&since=1h`, {
      token: root,
    });
    expect(response.status).toBe(200);
    const { records } = (await response.json()) as { records: AuditRecord[] };
    expect(records.map((r) => r.operation)).toEqual(['revoke', 'grant']);
    expect(records[1]).toMatchObject({
      actor: `${DEMO_ISSUER}#root`,
      via: 'admin-api',
      target: { subject },
      before: null,
      after: { grants: [{ permission: 'read:stats' }] },
    });
    expect(records[0]).toMatchObject({
      before: { grants: [{ permission: 'read:stats' }] },
      after: { grants: [] },
    });
  });

  it("lists only the tenant's records for a tenant-scoped admin", async () => {
    const s = setup();
    const subject = fresh('ivy');
    const root = await demoTokenFor('root');
    const acmeAdmin = await demoTokenFor('acme-admin');
    await s.call('POST', `/users/${subject}/grants?tenant=acme`, {
      token: acmeAdmin,
      body: { permission: 'read:posts' },
    });
    await s.call('POST', `/users/${subject}/grants`, {
      token: root,
      body: { permission: 'read:posts' },
    });
    const scoped = await s.call('GET', `/audit?tenant=acme&subject=${subject}`, {
      token: acmeAdmin,
    });
    const { records } = (await scoped.json()) as { records: AuditRecord[] };
    expect(records.map((r) => r.target)).toEqual([{ tenant: 'acme', subject }]);
    expect((await s.call('GET', `/audit?subject=${subject}`, { token: acmeAdmin })).status).toBe(
      403,
    );
    const all = await s.call('GET', `/audit?subject=${subject}`, { token: root });
    expect(((await all.json()) as { records: AuditRecord[] }).records).toHaveLength(2);
  });

  it('refuses a bad since or limit on GET /audit', async () => {
    const s = setup();
    const token = await demoTokenFor('root');
    const since = await s.call('GET', '/audit?since=yesterday', { token });
    expect(await problemOf(since)).toMatchObject({ field: 'since' });
    const limit = await s.call('GET', '/audit?limit=0', { token });
    expect(await problemOf(limit)).toMatchObject({ field: 'limit' });
  });
});

describe('the admin Worker behind the guard (<prefix>/v1/admin over the ADMIN binding)', () => {
  beforeEach(async () => {
    await seedDemo();
  });

  /** A guard whose ADMIN binding reaches an admin Worker over the same KV. */
  function guardWithAdmin(vars: Record<string, unknown> = {}): TestGuard {
    const admin = testAdmin(vars);
    return testGuard({
      ...vars,
      ADMIN: { fetch: (request: Request) => admin.worker.fetch(request, admin.env, testContext()) },
    });
  }

  it('needs a token and admin:permissions, then changes what the guard decides', async () => {
    const guard = guardWithAdmin();
    expect((await guard.fetch(`${BASE}/users/alice`)).status).toBe(401);
    const alice = await demoTokenFor('alice');
    const refused = await guard.fetch(`${BASE}/users/bob/grants`, {
      method: 'POST',
      headers: { ...bearer(alice), 'content-type': 'application/json' },
      body: JSON.stringify({ permission: 'read:stats' }),
    });
    expect(refused.status).toBe(403);
    expect(((await refused.json()) as Problem).reason).toBe('missing_permission');

    // carol's admin role grants `*`, which covers admin:permissions.
    const carol = await demoTokenFor('carol');
    const bob = await demoTokenFor('bob');
    expect((await testGuard().fetch('/stats', { headers: bearer(bob) })).status).toBe(403);
    const granted = await guard.fetch(`${BASE}/users/bob/grants`, {
      method: 'POST',
      headers: { ...bearer(carol), 'content-type': 'application/json' },
      body: JSON.stringify({ permission: 'read:stats' }),
    });
    expect(granted.status).toBe(201);
    // A guard isolate that has not cached bob reads the change from KV.
    expect((await testGuard().fetch('/stats', { headers: bearer(bob) })).status).toBe(200);
    const audit = await guard.fetch(`${BASE}/audit?subject=bob`, { headers: bearer(carol) });
    const { records } = (await audit.json()) as { records: AuditRecord[] };
    expect(records[0]).toMatchObject({
      operation: 'grant',
      via: 'admin-api',
      actor: `${DEMO_ISSUER}#carol`,
      target: { subject: 'bob' },
    });
  });

  it('serves the API under a custom GATEHOUSE_PREFIX set the same on both Workers', async () => {
    const guard = guardWithAdmin({ GATEHOUSE_PREFIX: '/auth' });
    const carol = await demoTokenFor('carol');
    const response = await guard.fetch('/auth/v1/admin/users/alice', { headers: bearer(carol) });
    expect(response.status).toBe(200);
  });

  it('answers 404 not_found for every admin path when ADMIN is not bound', async () => {
    const guard = testGuard();
    const carol = await demoTokenFor('carol');
    for (const path of ['', '/', '/users/alice', '/audit?since=1h', '/roles']) {
      const response = await guard.fetch(`${BASE}${path}`, { headers: bearer(carol) });
      expect(response.status, path).toBe(404);
      expect((await problemOf(response)).reason, path).toBe('not_found');
    }
  });

  it('is not served when the prefix is off: the path is then an ordinary request', async () => {
    const guard = guardWithAdmin({ GATEHOUSE_PREFIX: 'off' });
    const carol = await demoTokenFor('carol');
    const response = await guard.fetch(`${BASE}/users/alice`, { headers: bearer(carol) });
    // With the prefix off the path is an ordinary request: no route matches it.
    expect(response.status).toBe(403);
    expect(((await response.json()) as Problem).reason).toBe('no_route');
  });

  it('refuses an ADMIN binding that is not a service, naming it (503 configuration_error)', async () => {
    const response = await testGuard({ ADMIN: 'gatehouse-admin' }).fetch('/posts/1');
    expect(response.status).toBe(503);
    expect((await problemOf(response)).reason).toBe('configuration_error');
  });
});

describe('admin Worker configuration', () => {
  it.each([
    ['no PERMISSIONS binding', { PERMISSIONS: undefined }],
    ['GATEHOUSE_PREFIX off', { GATEHOUSE_PREFIX: 'off' }],
    ['a malformed GATEHOUSE_PREFIX', { GATEHOUSE_PREFIX: 'admin' }],
    ['AUDIT_RETENTION_DAYS 0', { AUDIT_RETENTION_DAYS: '0' }],
    ['KV_CACHE_TTL under KV minimum', { KV_CACHE_TTL: '5' }],
    ['a missing policy secret', { GATEHOUSE_DEV_SECRET: undefined }],
  ])('answers 503 configuration_error with Retry-After for %s', async (_what, vars) => {
    const response = await testAdmin(vars).fetch(`${BASE}/users/alice`, {
      headers: bearer(await demoTokenFor('carol')),
    });
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('5');
    expect((await problemOf(response)).reason).toBe('configuration_error');
  });

  it('fails at start-up naming the variable when the startup env is wrong', () => {
    expect(() =>
      createAdminWorker({ policy: DEMO_POLICY, startupEnv: { AUDIT_RETENTION_DAYS: 'forever' } }),
    ).toThrow(expect.objectContaining({ name: 'ConfigError', field: 'AUDIT_RETENTION_DAYS' }));
    expect(() =>
      createAdminWorker({ policy: DEMO_POLICY, startupEnv: { GATEHOUSE_PREFIX: 'off' } }),
    ).toThrow(expect.objectContaining({ name: 'ConfigError', field: 'GATEHOUSE_PREFIX' }));
  });
});
