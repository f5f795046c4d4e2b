import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/errors.ts';
import { applyIssuerEnv, ISSUER_ENV } from '../../../src/policy/issuer-env.ts';

// The environment configures what the policy leaves open; it never loosens what the policy states.

const policy = (issuer: Record<string, unknown>) => ({
  version: 1,
  issuers: [{ issuer: 'https://id.example/', keys: { secretEnv: 'S' }, ...issuer }],
});
const env = (vars: Record<string, string>) => (name: string) => vars[name];
const firstIssuer = (doc: unknown) => (doc as { issuers: Record<string, unknown>[] }).issuers[0];

describe('issuer settings from the environment', () => {
  it('sets the typ allowlist of an issuer that states none', () => {
    const doc = applyIssuerEnv(policy({}), env({ [ISSUER_ENV.types]: 'at+jwt' }));
    expect(firstIssuer(doc)?.types).toEqual(['at+jwt']);
  });

  it('narrows an explicit typ allowlist to the types the variable also names', () => {
    const doc = applyIssuerEnv(
      policy({ types: ['at+jwt'] }),
      env({ [ISSUER_ENV.types]: 'JWT,application/AT+JWT' }),
    );
    expect(firstIssuer(doc)?.types).toEqual(['at+jwt']);
  });

  it('refuses a variable that shares no type with an explicit allowlist', () => {
    expect(() =>
      applyIssuerEnv(policy({ types: ['at+jwt'] }), env({ [ISSUER_ENV.types]: 'JWT' })),
    ).toThrow(ConfigError);
  });

  it('keeps an explicit requireType: true when the variable says false', () => {
    const doc = applyIssuerEnv(
      policy({ requireType: true }),
      env({ [ISSUER_ENV.requireType]: 'false' }),
    );
    expect(firstIssuer(doc)?.requireType).toBe(true);
  });

  it('turns requireType on, and off where the policy leaves it open', () => {
    const on = applyIssuerEnv(policy({}), env({ [ISSUER_ENV.requireType]: 'true' }));
    const off = applyIssuerEnv(policy({}), env({ [ISSUER_ENV.requireType]: 'false' }));
    expect(firstIssuer(on)?.requireType).toBe(true);
    expect(firstIssuer(off)?.requireType).toBe(false);
  });
});
