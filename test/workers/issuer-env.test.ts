/**
 * The Worker reads the same issuer variables as the Lambdas (src/policy/issuer-env.ts): the
 * RFC 9068 recipe from `GATEHOUSE_TYPES` / `GATEHOUSE_REQUIRE_TYPE` as wrangler vars, and a bad
 * value stops start-up naming the variable.
 */
import * as jose from 'jose';
import { beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../../src/errors.ts';
import { createGatehouseWorker } from '../../src/workers/guard.ts';
import { DEMO_AUDIENCE, DEMO_ISSUER } from '../support/cases.ts';
import { bearer, DEMO_POLICY, seedDemo, TEST_SECRET, testGuard } from './helpers.ts';

beforeEach(async () => {
  await seedDemo();
});

function typedToken(typ: string | undefined): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new jose.SignJWT({})
    .setProtectedHeader({ alg: 'HS256', kid: 'dev', ...(typ !== undefined && { typ }) })
    .setIssuer(DEMO_ISSUER)
    .setAudience(DEMO_AUDIENCE)
    .setSubject('alice')
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(new TextEncoder().encode(TEST_SECRET));
}

async function status(vars: Record<string, string>, typ: string | undefined): Promise<number> {
  const guard = testGuard(vars);
  return (await guard.fetch('/me', { headers: bearer(await typedToken(typ)) })).status;
}

describe('issuer variables on the Worker', () => {
  it('GATEHOUSE_TYPES=at+jwt accepts only at+jwt and refuses a token without typ', async () => {
    const vars = { GATEHOUSE_TYPES: 'at+jwt' };
    expect(await status(vars, 'at+jwt')).toBe(200);
    expect(await status(vars, 'JWT')).toBe(401);
    expect(await status(vars, undefined)).toBe(401);
    expect(await status({}, undefined)).toBe(200);
  });

  it('GATEHOUSE_REQUIRE_TYPE=true refuses a missing typ; false accepts it', async () => {
    expect(await status({ GATEHOUSE_REQUIRE_TYPE: 'true' }, undefined)).toBe(401);
    expect(await status({ GATEHOUSE_REQUIRE_TYPE: 'true' }, 'JWT')).toBe(200);
    expect(
      await status({ GATEHOUSE_TYPES: 'at+jwt', GATEHOUSE_REQUIRE_TYPE: 'false' }, undefined),
    ).toBe(200);
  });

  it.each([
    ['GATEHOUSE_TYPES', 'at jwt'],
    ['GATEHOUSE_REQUIRE_TYPE', 'yes'],
    ['GATEHOUSE_JWKS_CACHE_TTL_SECONDS', '0'],
    // The demo issuer has no jwksUri: a timing would do nothing.
    ['GATEHOUSE_JWKS_TIMEOUT_MS', '500'],
  ])('stops start-up on %s=%s, naming the variable', (name, value) => {
    const start = () =>
      createGatehouseWorker({
        policy: DEMO_POLICY,
        startupEnv: { ORIGIN: 'echo', GATEHOUSE_DEV_SECRET: TEST_SECRET, [name]: value },
      });
    expect(start).toThrow(ConfigError);
    expect(start).toThrow(name);
  });
});
