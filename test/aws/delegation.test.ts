/**
 * Delegation through the Lambda authorizer against dynalite: a principal-mode answer (reused by
 * API Gateway for later routes) lists only what delegator ∩ scope ∩ ceiling allows and never a
 * route that refuses delegated callers; the delegator's own answer is not narrowed by it (nor the
 * other way round); the context carries the actor chain and token id.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PermissionAdmin } from '../../src/admin/operations.ts';
import { DynamoDBAdminStore } from '../../src/aws/dynamodb-admin-store.ts';
import { createLambdaHandler } from '../../src/aws/lambda.ts';
import {
  actClaim,
  createSigner,
  parseIssuerKeys,
  STANDING_CLAIM,
  standingGrant,
} from '../../src/delegation/index.ts';
import { compilePolicy } from '../../src/policy/index.ts';
import {
  DEMO_DELEGATION_ISSUER,
  DEMO_ISSUER,
  type DecisionCase,
  demoDelegationKeys,
  demoToken,
} from '../support/cases.ts';
import { evaluatePolicy } from './apigw-cache-model.ts';
import {
  DEMO_POLICY,
  demoTable,
  httpEvent,
  type LocalDynamo,
  PREFIX,
  restRequestEvent,
  SECRET,
  startDynalite,
  tokenEvent,
} from './support.ts';

let local: LocalDynamo;
let table: string;
let keys: string;

beforeAll(async () => {
  local = await startDynalite();
  table = await demoTable(local.client());
  keys = await demoDelegationKeys();
});
afterAll(async () => local.close());

function handler(mode: 'principal' | 'route') {
  return createLambdaHandler({
    policy: DEMO_POLICY,
    env: {
      TABLE_NAME: table,
      GATEHOUSE_DEV_SECRET: SECRET,
      GATEHOUSE_DELEGATION_KEYS: keys,
      AUTHORIZER_MODE: mode,
    },
    client: local.client(),
    log: () => {},
  });
}

const delegated = (subject: string, scope: string) =>
  demoToken(
    {
      name: 'delegated',
      subject,
      method: 'GET',
      path: '/posts/1',
      delegation: { actors: ['reporter'], scope },
      expect: { allow: true, status: 200, reason: 'allowed' },
    } satisfies DecisionCase,
    SECRET,
    keys,
  ) as Promise<string>;
const own = (subject: string) =>
  demoToken(
    {
      name: 'own',
      subject,
      method: 'GET',
      path: '/posts/1',
      expect: { allow: true, status: 200, reason: 'allowed' },
    },
    SECRET,
  ) as Promise<string>;

describe('delegation through the Lambda authorizer', () => {
  it('a principal-mode answer lists only what the delegation passes on', async () => {
    const h = handler('principal');
    const response = await h(tokenEvent('GET', '/posts/1', await delegated('alice', 'read:posts')));
    expect(evaluatePolicy(response, `${PREFIX}GET/posts/1`).allow).toBe(true);
    expect(evaluatePolicy(response, `${PREFIX}GET/posts`).allow).toBe(true);
    // alice holds read:drafts, outside this scope; write is outside reporter's ceiling.
    expect(evaluatePolicy(response, `${PREFIX}GET/drafts`).allow).toBe(false);
    expect(evaluatePolicy(response, `${PREFIX}PUT/posts/1`).allow).toBe(false);
    expect(response.context).toMatchObject({ subject: 'alice', actor: 'reporter' });
    expect(typeof response.context.tokenId).toBe('string');
  });

  it('never lists a route that refuses delegated callers, whatever the scope', async () => {
    const h = handler('principal');
    const response = await h(tokenEvent('GET', '/posts/1', await delegated('carol', 'read:*')));
    expect(evaluatePolicy(response, `${PREFIX}GET/v1/admin/users`).allow).toBe(false);
    const ownAnswer = await h(tokenEvent('GET', '/posts/1', await own('carol')));
    expect(evaluatePolicy(ownAnswer, `${PREFIX}GET/v1/admin/users`).allow).toBe(true);
  });

  it("the delegator's own answer stays whole after a delegated one, and the reverse", async () => {
    const h = handler('principal');
    const first = await h(tokenEvent('GET', '/posts/1', await own('alice')));
    expect(evaluatePolicy(first, `${PREFIX}GET/drafts`).allow).toBe(true);
    const narrowed = await h(tokenEvent('GET', '/posts/1', await delegated('alice', 'read:posts')));
    expect(evaluatePolicy(narrowed, `${PREFIX}GET/drafts`).allow).toBe(false);
    const again = await h(tokenEvent('GET', '/posts/1', await own('alice')));
    expect(evaluatePolicy(again, `${PREFIX}GET/drafts`).allow).toBe(true);
    const wider = await h(
      tokenEvent('GET', '/posts/1', await delegated('alice', 'read:drafts read:posts')),
    );
    expect(evaluatePolicy(wider, `${PREFIX}GET/drafts`).allow).toBe(true);
  });

  it('route mode on HTTP APIs: the same rule and the actor in the context', async () => {
    const h = handler('route');
    const token = await delegated('alice', 'read:posts');
    const allowed = await h(httpEvent('GET', '/posts/1', token, '203.0.113.9'));
    expect(allowed).toMatchObject({ isAuthorized: true, context: { actor: 'reporter' } });
    const outside = await h(httpEvent('GET', '/drafts', token, '203.0.113.9'));
    expect(outside).toMatchObject({
      isAuthorized: false,
      context: { reason: 'outside_delegation' },
    });
  });
});

describe('standing delegation through the Lambda authorizer', () => {
  it('a principal-mode answer follows the standing grant and its denies, from the table', async () => {
    const standingTable = await demoTable(local.client());
    const policy = structuredClone(DEMO_POLICY) as { delegation: Record<string, unknown> };
    policy.delegation = { ...policy.delegation, standingGrants: true };
    const admin = new PermissionAdmin({
      store: new DynamoDBAdminStore({ client: local.client(), tableName: standingTable }),
      policyRoles: compilePolicy(policy, { env: { GATEHOUSE_DEV_SECRET: SECRET } }).roles,
      actor: 'test',
      via: 'cli',
    });
    // alice (reader, plus read:drafts) lets bob read, but takes her drafts back with a deny.
    await admin.grant({ subject: 'alice' }, { permission: standingGrant('bob', 'read:*')! });
    await admin.deny({ subject: 'alice' }, { permission: 'gatehouse.delegate:bob:read:drafts' });
    const h = createLambdaHandler({
      policy,
      env: {
        TABLE_NAME: standingTable,
        GATEHOUSE_DEV_SECRET: SECRET,
        GATEHOUSE_DELEGATION_KEYS: keys,
        AUTHORIZER_MODE: 'principal',
      },
      client: local.client(),
      log: () => {},
    });
    const set = parseIssuerKeys(keys, 'test');
    const now = Math.floor(Date.now() / 1000);
    const token = await createSigner(set).sign({
      iss: DEMO_DELEGATION_ISSUER,
      sub: 'alice',
      aud: DEMO_DELEGATION_ISSUER,
      iat: now,
      nbf: now,
      exp: now + 300,
      jti: 'standing-1',
      scope: 'read:*',
      act: actClaim([{ subject: 'bob', issuer: DEMO_ISSUER }]),
      grant: STANDING_CLAIM,
      subject_iat: now,
      actor_iats: [now],
      parents: [],
    });
    const response = await h(tokenEvent('GET', '/posts/1', token));
    expect(evaluatePolicy(response, `${PREFIX}GET/posts/1`).allow).toBe(true);
    // read:drafts is alice's and within read:*, but her deny on the standing grant wins...
    expect(evaluatePolicy(response, `${PREFIX}GET/drafts`).allow).toBe(false);
    // ...and nothing beyond the grant is passed on.
    expect(evaluatePolicy(response, `${PREFIX}PUT/posts/1`).allow).toBe(false);
    await admin.revoke({ subject: 'alice' }, standingGrant('bob', 'read:*')!);
    const fresh = createLambdaHandler({
      policy,
      env: {
        TABLE_NAME: standingTable,
        GATEHOUSE_DEV_SECRET: SECRET,
        GATEHOUSE_DELEGATION_KEYS: keys,
        AUTHORIZER_MODE: 'principal',
      },
      client: local.client(),
      log: () => {},
    });
    const revoked = await fresh(tokenEvent('GET', '/posts/1', token)).catch((e: Error) => e);
    const denied =
      revoked instanceof Error || !evaluatePolicy(revoked, `${PREFIX}GET/posts/1`).allow;
    expect(denied).toBe(true);
  });
});

describe('a refused delegation in principal mode', () => {
  const refusedTokens = async () => {
    const set = parseIssuerKeys(keys, 'test');
    const now = Math.floor(Date.now() / 1000);
    // An actor no rule allows, and a standing token whose grant is not in the record.
    const noRule = await demoToken(
      {
        name: 'refused',
        subject: 'alice',
        method: 'GET',
        path: '/me',
        delegation: { actors: ['nobody'], scope: 'read:posts' },
        expect: { allow: false, status: 403, reason: 'delegation_refused' },
      } satisfies DecisionCase,
      SECRET,
      keys,
    );
    const noGrant = await createSigner(set).sign({
      iss: DEMO_DELEGATION_ISSUER,
      sub: 'alice',
      aud: DEMO_DELEGATION_ISSUER,
      iat: now,
      nbf: now,
      exp: now + 300,
      jti: 'no-standing-grant',
      scope: 'read:*',
      act: actClaim([{ subject: 'nobody-granted', issuer: DEMO_ISSUER }]),
      grant: STANDING_CLAIM,
      subject_iat: now,
      actor_iats: [now],
      parents: [],
    });
    return { noRule: noRule as string, noGrant };
  };

  it('allows nothing, not even authenticated routes, on REST TOKEN and REQUEST events', async () => {
    const policy = structuredClone(DEMO_POLICY) as { delegation: Record<string, unknown> };
    policy.delegation.standingGrants = true;
    const h = createLambdaHandler({
      policy,
      env: {
        TABLE_NAME: table,
        GATEHOUSE_DEV_SECRET: SECRET,
        GATEHOUSE_DELEGATION_KEYS: keys,
        AUTHORIZER_MODE: 'principal',
      },
      client: local.client(),
      log: () => {},
    });
    const tokens = await refusedTokens();
    for (const [name, token] of Object.entries(tokens)) {
      for (const event of [tokenEvent, restRequestEvent]) {
        const answer = await h(event('GET', '/posts/1', token));
        for (const route of ['GET/posts/1', 'GET/me', 'GET/posts']) {
          expect({
            name,
            type: event.name,
            route,
            allow: evaluatePolicy(answer, `${PREFIX}${route}`).allow,
          }).toEqual({
            name,
            type: event.name,
            route,
            allow: false,
          });
        }
      }
    }
  });

  it('agrees with route mode and HTTP APIs: the authenticated route is refused too', async () => {
    const { noRule } = await refusedTokens();
    const route = await handler('route')(tokenEvent('GET', '/me', noRule));
    expect(evaluatePolicy(route, `${PREFIX}GET/me`).allow).toBe(false);
    const simple = await handler('route')(httpEvent('GET', '/me', noRule, '203.0.113.9'));
    expect(simple).toMatchObject({ isAuthorized: false });
  });
});
