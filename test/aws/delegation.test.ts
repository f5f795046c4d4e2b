/**
 * Delegation through the Lambda authorizer against dynalite: a principal-mode answer (reused by
 * API Gateway for later routes) lists only what delegator ∩ scope ∩ ceiling allows and never a
 * route that refuses delegated callers; the delegator's own answer is not narrowed by it (nor the
 * other way round); the context carries the actor chain and token id.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createLambdaHandler } from '../../src/aws/lambda.ts';
import { type DecisionCase, demoDelegationKeys, demoToken } from '../support/cases.ts';
import { evaluatePolicy } from './apigw-cache-model.ts';
import {
  DEMO_POLICY,
  demoTable,
  httpEvent,
  type LocalDynamo,
  PREFIX,
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
