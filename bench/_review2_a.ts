import { compilePolicy, Gatehouse, MemoryStore } from '../src/index.ts';
import type { Principal, PermissionStore } from '../src/types.ts';

let claims: Record<string, unknown> = {};
let tenant: string | undefined = 'acme';
const principal = (): Principal => ({ issuer: 'i', issuerKind: 'external', subject: 'alice', ...(tenant !== undefined && { tenant }), scopes: [], claims, actors: [], expiresAt: 2e9 });
const verifier = { verify: async () => ({ principal: principal(), cache: 'miss' as const }) };
const base = (extra: any = {}) => ({
  version: 1,
  issuers: [{ issuer: 'i', audiences: null, algorithms: ['ES256'], keys: { jwks: { keys: [] } } }],
  roles: {
    ops: { grants: ['*'], denies: [
      { permission: 'delete:*', when: { ip: ['203.0.113.0/24'] } },
      { permission: 'admin:*', when: { country: ['KP'] } },
      { permission: 'write:*', when: { claims: { contractor: true } } },
    ] },
  },
  routes: [
    { method: 'DELETE', path: '/posts/:id', require: ['delete:posts:{id}'] },
    { method: 'GET', path: '/admin', require: ['admin:panel'] },
    { method: 'PUT', path: '/posts/:id', require: ['write:posts:{id}'] },
    { path: '/t/:tenant/x', require: ['read:x'] },
    { method: 'GET', path: '/*', public: true },
  ],
  ...extra,
});
const store = new MemoryStore();
store.putUser({ subject: 'alice', tenant: 'acme', roles: [{ role: 'ops' }], grants: [], denies: [] });
const g = new Gatehouse({ policy: compilePolicy(base()), store, verifier });
const show = async (label: string, req: any) => { const d = await g.decide({ authorization: 'Bearer x', ...req }); console.log(label.padEnd(50), d.allow, d.status, d.reason); };
await show('deny ip: in range', { method: 'DELETE', path: '/posts/1', ip: '203.0.113.9' });
await show('deny ip: missing ip', { method: 'DELETE', path: '/posts/1' });
await show('deny ip: XFF list', { method: 'DELETE', path: '/posts/1', ip: '203.0.113.9, 10.0.0.1' });
await show('deny ip: with port', { method: 'DELETE', path: '/posts/1', ip: '203.0.113.9:5555' });
await show('deny ip: mapped v6', { method: 'DELETE', path: '/posts/1', ip: '::ffff:203.0.113.9' });
await show('deny country: KP', { method: 'GET', path: '/admin', country: 'KP' });
await show('deny country: missing', { method: 'GET', path: '/admin' });
claims = { contractor: true };
await show('deny claim: present', { method: 'PUT', path: '/posts/1' });
claims = {};
await show('deny claim: absent (not kept)', { method: 'PUT', path: '/posts/1' });
// tenancy typo
const g2 = new Gatehouse({ policy: compilePolicy(base({ tenancy: { pathParam: 'tenantId' } })), store, verifier });
const d2 = await g2.decide({ method: 'GET', path: '/t/evil/x', authorization: 'Bearer x' });
console.log('tenancy.pathParam typo, other tenant', d2.allow, d2.reason);
// HEAD / method case
for (const m of ['head', 'HEAD', 'delete', 'DeLeTe']) {
  const d = await g.decide({ method: m, path: '/admin', authorization: 'Bearer x' });
  console.log('method', m, '/admin', d.allow, d.reason, d.route);
}
// Tomcat-ish
for (const p of ['/static/..;/admin', '/admin;x', '/ADMIN', '/admin%00', '/%2e%2e/admin', '/admin/', '/admin?x', '/admin#frag', '/admin/.%2e', '/%EF%BC%8E%EF%BC%8E/admin', '/posts/\uD800']) {
  const d = await g.decide({ method: 'DELETE', path: p.replace('admin','posts/1'), authorization: 'Bearer x' , ip: '203.0.113.9'});
  console.log('path', JSON.stringify(p.replace('admin','posts/1')), d.allow, d.status, d.reason, d.route);
}
