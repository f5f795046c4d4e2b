import * as jose from 'jose';
import { createAuthorizer } from '../../../src/aws/authorizer.ts';
import { Gatehouse } from '../../../src/policy/decide.ts';
import { compilePolicy } from '../../../src/policy/policy.ts';
import { MemoryStore } from '../../../src/stores/memory.ts';
import type { UserRecord } from '../../../src/types.ts';
import { evaluatePolicy } from '../apigw-cache-model.ts';
import { PREFIX } from '../support.ts';

const SECRET = 'review-secret-0123456789abcdef-0123456789';
const ISSUER = 'https://review.local/';
const AUD = 'https://api.review.local';
export const T0 = Date.UTC(2030, 0, 2, 12, 0, 0);

export interface Setup {
  routes: Record<string, unknown>[];
  tenancy?: boolean;
  roles?: Record<string, { grants: string[]; denies?: string[] }>;
  record: {
    grants: UserRecord['grants'];
    denies: UserRecord['denies'];
    roles?: UserRecord['roles'];
  };
  tenant?: string;
  claims?: Record<string, unknown>;
  ttl?: number;
}

export async function world(s: Setup) {
  const clock = { at: 0 };
  const now = () => T0 + clock.at;
  const store = new MemoryStore();
  store.putUser({
    subject: 'u1',
    ...(s.tenant !== undefined && { tenant: s.tenant }),
    ...s.record,
    roles: s.record.roles ?? [],
  } as UserRecord);
  const policy = {
    version: 1,
    issuers: [
      {
        issuer: ISSUER,
        audiences: [AUD],
        algorithms: ['HS256'],
        keys: { secretEnv: 'S', kid: 'dev' },
        ...(s.tenant !== undefined && { tenantClaim: 'tid' }),
      },
    ],
    cache: { ttlSeconds: 0, negativeTtlSeconds: 0 },
    ...(s.tenancy && { tenancy: { pathParam: 'tenant' } }),
    roles: s.roles ?? {},
    routes: s.routes,
  };
  const gatehouse = new Gatehouse({
    policy: compilePolicy(policy, { env: { S: SECRET } }),
    store,
    now,
  });
  const opts = { gatehouse, cacheTtlSeconds: s.ttl ?? 300, now, log: () => {} };
  const authorizer = createAuthorizer({ ...opts, mode: 'principal' });
  const oracle = createAuthorizer({ ...opts, mode: 'route' });
  const token = await new jose.SignJWT({
    ...(s.tenant !== undefined && { tid: s.tenant }),
    ...s.claims,
  })
    .setProtectedHeader({ alg: 'HS256', kid: 'dev', typ: 'JWT' })
    .setIssuer(ISSUER)
    .setAudience(AUD)
    .setSubject('u1')
    .setIssuedAt(Math.floor(T0 / 1000))
    .setExpirationTime(Math.floor(T0 / 1000) + 86_400)
    .sign(new TextEncoder().encode(SECRET));
  const ev = (arn: string) =>
    ({ type: 'TOKEN', authorizationToken: `Bearer ${token}`, methodArn: arn }) as const;
  return {
    clock,
    async first(method: string, path: string, prefix = PREFIX) {
      return authorizer(ev(`${prefix}${method}${path}`));
    },
    async truth(method: string, path: string, prefix = PREFIX) {
      const arn = `${prefix}${method}${path}`;
      try {
        return evaluatePolicy(await oracle(ev(arn)), arn).allow;
      } catch {
        return false;
      }
    },
    async decide(method: string, path: string) {
      return gatehouse.decide({ method, path, authorization: `Bearer ${token}` });
    },
    cachedAllows(policy: unknown, method: string, path: string, prefix = PREFIX) {
      return evaluatePolicy(policy as never, `${prefix}${method}${path}`).allow;
    },
  };
}

export function res(policy: unknown) {
  const p = policy as { policyDocument: { Statement: { Effect: string; Resource: string[] }[] } };
  return p.policyDocument.Statement.map((s) => ({
    e: s.Effect,
    r: s.Resource.map((x) => x.slice(PREFIX.length)),
  }));
}
