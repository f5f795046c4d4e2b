/**
 * The shared decision table (test/cases/decisions.json) through the Lambda handler, with
 * demo/policy.json and demo/permissions.json seeded into dynalite, for every event type where a
 * case applies. The authorizer's answer is mapped back to { allow, status, reason } the way API
 * Gateway reads it; any difference from the table fails.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type AuthorizerEvent, PRINCIPAL_REASON } from '../../src/aws/authorizer.ts';
import { createLambdaHandler } from '../../src/aws/lambda.ts';
import { DECISION_LOG_TYPE } from '../../src/logging/decision-log.ts';
import { type DecisionCase, demoDelegationKeys, demoToken } from '../support/cases.ts';
import { evaluatePolicy } from './apigw-cache-model.ts';
import {
  DEMO_POLICY,
  demoTable,
  httpEvent,
  type LocalDynamo,
  PREFIX,
  read,
  restRequestEvent,
  SECRET,
  startDynalite,
  tokenEvent,
} from './support.ts';

const { cases } = JSON.parse(read('test/cases/decisions.json')) as { cases: DecisionCase[] };

let local: LocalDynamo;
let table: string;
let keys: string;
beforeAll(async () => {
  local = await startDynalite();
  table = await demoTable(local.client());
  keys = await demoDelegationKeys();
});
afterAll(async () => local.close());

type Kind = 'rest-token' | 'rest-request' | 'http-simple' | 'http-iam';

const KINDS: readonly { kind: Kind; mode: string; applies: (c: DecisionCase) => boolean }[] = [
  // TOKEN events carry no client IP: IP-conditioned cases do not apply (they fail closed).
  // Principal mode denies every percent-encoded path (a documented false deny, docs/aws.md).
  {
    kind: 'rest-token',
    mode: 'principal',
    applies: (c) => c.ip === undefined && !c.path.includes('%'),
  },
  { kind: 'rest-request', mode: 'route', applies: () => true },
  { kind: 'http-simple', mode: 'route', applies: () => true },
  { kind: 'http-iam', mode: 'route', applies: () => true },
];

function eventFor(
  kind: Kind,
  c: DecisionCase,
  token: string | undefined,
): { event: AuthorizerEvent; arn: string } {
  const ip = c.ip ?? '203.0.113.9';
  if (kind === 'rest-token')
    return { event: tokenEvent(c.method, c.path, token), arn: `${PREFIX}${c.method}${c.path}` };
  if (kind === 'rest-request') {
    return {
      event: restRequestEvent(c.method, c.path, token, ip),
      arn: `${PREFIX}${c.method}${c.path}`,
    };
  }
  const event = httpEvent(c.method, c.path, token, ip);
  return { event, arn: (event as { routeArn: string }).routeArn };
}

for (const { kind, mode, applies } of KINDS) {
  describe(`shared decision table through the Lambda handler (${kind}, ${mode} mode)`, () => {
    const logs: Record<string, unknown>[] = [];
    let handler: ReturnType<typeof createLambdaHandler>;
    beforeAll(() => {
      handler = createLambdaHandler({
        policy: DEMO_POLICY,
        env: {
          TABLE_NAME: table,
          GATEHOUSE_DEV_SECRET: SECRET,
          GATEHOUSE_DELEGATION_KEYS: keys,
          AUTHORIZER_MODE: mode,
          HTTP_API_RESPONSE: kind === 'http-iam' ? 'iam' : 'simple',
        },
        client: local.client(),
        log: (entry) => logs.push(entry),
      });
    });

    it.each(cases.filter(applies).map((c) => [c.name, c] as const))('%s', async (_name, c) => {
      const token = await demoToken(c, SECRET, keys);
      const { event, arn } = eventFor(kind, c, token);
      logs.length = 0;
      // The request's own deny line (written before the answer leaves; denies always are).
      const decisionLine = () =>
        logs.find((l) => l.type === DECISION_LOG_TYPE && l.allow === false);
      let got: { allow: boolean; status: number; reason: unknown };
      try {
        const response = await handler(event);
        const reason = response.context.reason;
        if ('isAuthorized' in response) {
          got = {
            allow: response.isAuthorized,
            status: Number(response.context.status ?? 200),
            reason,
          };
        } else if (mode === 'principal') {
          // A principal-mode answer is reused for later routes, so its context names no reason
          // or status; a deny's own reason and status are in its decision log line.
          expect(response.context.reason).toBe(PRINCIPAL_REASON);
          expect(response.context.status).toBeUndefined();
          const answer = evaluatePolicy(response, arn);
          const denied = decisionLine();
          got = answer.allow
            ? { allow: true, status: 200, reason: c.expect.allow ? c.expect.reason : 'allowed' }
            : {
                allow: false,
                status: Number(denied?.status ?? 403),
                reason: denied?.reason,
              };
        } else {
          const answer = evaluatePolicy(response, arn);
          got = {
            allow: answer.allow,
            status: answer.status === 403 ? Number(response.context.status ?? 403) : answer.status,
            reason,
          };
        }
      } catch (error) {
        expect((error as Error).message).toBe('Unauthorized');
        got = { allow: false, status: 401, reason: decisionLine()?.reason };
      }
      expect(got).toEqual(c.expect);
    });
  });
}
