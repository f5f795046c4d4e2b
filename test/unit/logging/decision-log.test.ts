/**
 * The decision logger on real decisions (a Gatehouse over a MemoryStore, tokens from a real
 * signing key): sampling, the token digest, what a line holds and never holds, and config.
 */
import { createHash } from 'node:crypto';
import { afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../../../src/errors.ts';
import {
  DECISION_LOG_TYPE,
  DecisionLogger,
  type DecisionLoggerOptions,
  type DecisionLogLine,
  readDecisionLogConfig,
  tokenDigest,
} from '../../../src/logging/index.ts';
import { type CompiledPolicy, compilePolicy, Gatehouse } from '../../../src/policy/index.ts';
import { MemoryStore } from '../../../src/stores/index.ts';
import type { Decision } from '../../../src/types.ts';
import { readWorkerConfig } from '../../../src/workers/guard.ts';
import { AUDIENCE, createTestIssuer, type TestIssuer } from '../../support/issuer.ts';

const NOW = Date.parse('2026-11-23T12:00:00Z');

let idp: TestIssuer;
let policy: CompiledPolicy;
let gatehouse: Gatehouse;

beforeAll(async () => {
  idp = await createTestIssuer({ now: () => NOW });
  policy = compilePolicy({
    version: 1,
    issuers: [
      {
        issuer: idp.issuer,
        audiences: [AUDIENCE],
        algorithms: ['ES256'],
        keys: { jwks: idp.jwks },
        tenantClaim: 'tid',
        keepClaims: ['email'],
      },
    ],
    roles: { reader: { grants: ['read:posts'] } },
    routes: [
      { method: 'GET', path: '/posts/:id', require: ['read:posts'] },
      { method: 'PUT', path: '/posts/:id', require: ['write:posts:{id}'] },
    ],
  });
});

beforeEach(() => {
  const store = new MemoryStore();
  store.putUser({
    subject: 'alice',
    tenant: 'acme',
    roles: [{ role: 'reader' }],
    grants: [],
    denies: [],
  });
  gatehouse = new Gatehouse({ policy, store, now: () => NOW });
});

afterEach(() => {
  vi.restoreAllMocks();
});

/** A logger collecting its lines, with a fixed wall clock and a clock that moves 2.5 ms. */
function collecting(options: DecisionLoggerOptions = {}) {
  const lines: DecisionLogLine[] = [];
  let tick = 100;
  const logger = new DecisionLogger({
    write: (line) => lines.push(line),
    now: () => NOW,
    clock: () => {
      tick += 2.5;
      return tick;
    },
    ...options,
  });
  return { logger, lines };
}

async function request(method: string, path: string, claims: Record<string, unknown> = {}) {
  const token = await idp.mint({ tid: 'acme', email: 'alice@example.com', ...claims });
  const asked = { method, path, authorization: `Bearer ${token}` };
  const decision = await gatehouse.decide(asked);
  return { token, asked, decision };
}

function sha256Prefix(token: string): string {
  return createHash('sha256').update(token).digest().subarray(0, 16).toString('base64url');
}

describe('sampling', () => {
  it('always logs a deny, without drawing a random number', async () => {
    const random = vi.fn(() => 0.999);
    const { logger, lines } = collecting({ allowSampleRate: 0, random });
    const { asked, decision } = await request('PUT', '/posts/7');
    expect(decision.allow).toBe(false);
    await logger.log('worker', decision, asked, logger.start());
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ allow: false, status: 403, sampleRate: 1 });
    expect(random).not.toHaveBeenCalled();
  });

  it('logs an allow when the draw falls under the rate and says the rate it was sampled at', async () => {
    const { logger, lines } = collecting({ allowSampleRate: 0.25, random: () => 0.2 });
    const { asked, decision } = await request('GET', '/posts/7');
    await logger.log('worker', decision, asked, logger.start());
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ allow: true, level: 'info', sampleRate: 0.25 });
  });

  it('skips an allow above the rate at the cost of one draw: no line, no hashing', async () => {
    const random = vi.fn(() => 0.3);
    const digest = vi.spyOn(crypto.subtle, 'digest');
    const write = vi.fn();
    const logger = new DecisionLogger({ allowSampleRate: 0.25, random, write });
    const { asked, decision } = await request('GET', '/posts/7');
    expect(logger.log('worker', decision, asked, logger.start())).toBeUndefined();
    expect(random).toHaveBeenCalledTimes(1);
    expect(digest).not.toHaveBeenCalled();
    expect(write).not.toHaveBeenCalled();
  });

  it('logs every allow at rate 1 and none at rate 0', async () => {
    const { asked, decision } = await request('GET', '/posts/7');
    const all = collecting({ allowSampleRate: 1, random: () => 0.999_999 });
    const none = collecting({ allowSampleRate: 0, random: () => 0 });
    for (let i = 0; i < 3; i++) {
      await all.logger.log('worker', decision, asked, 0);
      await none.logger.log('worker', decision, asked, 0);
    }
    expect(all.lines).toHaveLength(3);
    expect(none.lines).toHaveLength(0);
  });
});

describe('the token digest', () => {
  it('is the first 16 bytes of SHA-256 over the token, base64url', async () => {
    const { logger, lines } = collecting();
    const { token, asked, decision } = await request('PUT', '/posts/7');
    await logger.log('worker', decision, asked, 0);
    expect(lines[0]?.tokenDigest).toBe(sha256Prefix(token));
    expect(lines[0]?.tokenDigest).toMatch(/^[A-Za-z0-9_-]{22}$/);
  });

  it('is computed from a check item token as from an Authorization header', async () => {
    const { logger, lines } = collecting();
    const { token, decision } = await request('PUT', '/posts/7');
    await logger.log('check-rpc', decision, { token }, 0);
    expect(lines[0]?.tokenDigest).toBe(sha256Prefix(token));
  });

  it('is left out without a token, and for a credential that is not a JWS', async () => {
    const { logger, lines } = collecting();
    const none = await gatehouse.decide({ method: 'GET', path: '/posts/7' });
    await logger.log('worker', none, { method: 'GET', path: '/posts/7' }, 0);
    const asked = { method: 'GET', path: '/posts/7', authorization: 'Bearer hunter2' };
    await logger.log('worker', await gatehouse.decide(asked), asked, 0);
    const basic = { method: 'GET', path: '/posts/7', authorization: 'Basic YWxpY2U6c2VjcmV0' };
    await logger.log('worker', await gatehouse.decide(basic), basic, 0);
    expect(lines.map((l) => l.reason)).toEqual([
      'token_missing',
      'token_malformed',
      'token_malformed',
    ]);
    for (const line of lines) expect(line).not.toHaveProperty('tokenDigest');
    expect(JSON.stringify(lines)).not.toContain('hunter2');
    expect(JSON.stringify(lines)).not.toContain('YWxpY2U6c2VjcmV0');
  });
});

describe('a line', () => {
  it('holds the documented fields for an allow', async () => {
    const { logger, lines } = collecting({ allowSampleRate: 1 });
    const { asked, decision } = await request('GET', '/posts/7?draft=1');
    const startedAt = logger.start();
    await logger.log('apigateway', decision, { ...asked, method: 'get' }, startedAt);
    expect(lines[0]).toEqual({
      time: '2026-11-23T12:00:00.000Z',
      level: 'info',
      type: DECISION_LOG_TYPE,
      edge: 'apigateway',
      allow: true,
      status: 200,
      reason: 'allowed',
      method: 'GET',
      path: '/posts/7',
      route: 'GET /posts/:id',
      required: ['read:posts'],
      matched: [{ required: 'read:posts', grant: 'read:posts', via: ['reader'] }],
      subject: 'alice',
      tenant: 'acme',
      issuer: idp.issuer,
      cache: { token: 'miss', permissions: 'miss' },
      latencyMs: 2.5,
      tokenDigest: expect.stringMatching(/^[A-Za-z0-9_-]{22}$/),
      sampleRate: 1,
    });
  });

  it('never holds the token, the Authorization header, claims or scopes', async () => {
    const { logger, lines } = collecting({ allowSampleRate: 1 });
    for (const [method, path] of [
      ['GET', '/posts/7'],
      ['PUT', '/posts/7'],
    ] as const) {
      const { token, asked, decision } = await request(method, path, { scope: 'posts.read' });
      await logger.log('worker', decision, asked, 0);
      const text = JSON.stringify(lines.at(-1));
      for (const part of token.split('.')) expect(text).not.toContain(part);
      expect(text).not.toMatch(/bearer/i);
      expect(text).not.toContain('alice@example.com');
      expect(text).not.toContain('posts.read');
    }
    expect(lines).toHaveLength(2);
  });

  it('is warn for 400, 401 and 403 denies and error for a 503', async () => {
    const { logger, lines } = collecting();
    const deny = (status: Decision['status']) =>
      ({ allow: false, status, reason: 'internal_error', explain: '' }) as Decision;
    for (const status of [400, 401, 403, 503] as const)
      await logger.log('hono', deny(status), {}, 0);
    expect(lines.map((l) => l.level)).toEqual(['warn', 'warn', 'warn', 'error']);
  });

  it('cuts the path at a query or fragment', async () => {
    const { logger, lines } = collecting();
    const denied = { allow: false, status: 401, reason: 'token_missing', explain: '' } as const;
    await logger.log('check-api', denied, { path: '/posts/1?access_token=abc#x' }, 0);
    await logger.log('check-api', denied, { path: '/posts/1#x?y' }, 0);
    expect(lines.map((l) => l.path)).toEqual(['/posts/1', '/posts/1']);
  });
});

describe('logging never breaks a request', () => {
  it('swallows a sink that throws', async () => {
    const logger = new DecisionLogger({
      write: () => {
        throw new Error('sink down');
      },
    });
    const { asked, decision } = await request('PUT', '/posts/7');
    const pending = logger.log('worker', decision, asked, 0);
    await expect(pending).resolves.toBeUndefined();
  });

  it('swallows a random source that throws', async () => {
    const logger = new DecisionLogger({
      allowSampleRate: 0.5,
      random: () => {
        throw new Error('no entropy');
      },
    });
    const { asked, decision } = await request('GET', '/posts/7');
    expect(() => logger.log('worker', decision, asked, 0)).not.toThrow();
  });
});

describe('configuration', () => {
  const config = (vars: Record<string, string>) => readDecisionLogConfig((name) => vars[name]);

  it('is on at 1 % by default, and off with DECISION_LOG=off', () => {
    expect(config({})).toEqual({ allowSampleRate: 0.01 });
    expect(config({ DECISION_LOG: ' ', DECISION_LOG_ALLOW_SAMPLE_RATE: '' })).toEqual({
      allowSampleRate: 0.01,
    });
    expect(config({ DECISION_LOG: 'on', DECISION_LOG_ALLOW_SAMPLE_RATE: '0.5' })).toEqual({
      allowSampleRate: 0.5,
    });
    expect(config({ DECISION_LOG: 'off' })).toBeNull();
  });

  it.each([
    [{ DECISION_LOG: 'yes' }, 'DECISION_LOG'],
    [{ DECISION_LOG_ALLOW_SAMPLE_RATE: '1.5' }, 'DECISION_LOG_ALLOW_SAMPLE_RATE'],
    [{ DECISION_LOG_ALLOW_SAMPLE_RATE: '-0.1' }, 'DECISION_LOG_ALLOW_SAMPLE_RATE'],
    [{ DECISION_LOG_ALLOW_SAMPLE_RATE: '1e-2' }, 'DECISION_LOG_ALLOW_SAMPLE_RATE'],
    [{ DECISION_LOG_ALLOW_SAMPLE_RATE: '10%' }, 'DECISION_LOG_ALLOW_SAMPLE_RATE'],
  ])('refuses %o with a ConfigError naming %s', (vars, field) => {
    expect(() => config(vars)).toThrow(ConfigError);
    expect(() => config(vars)).toThrow(expect.objectContaining({ field }));
  });

  it('fails the Worker configuration naming the variable', () => {
    expect(() => readWorkerConfig({ DECISION_LOG_ALLOW_SAMPLE_RATE: 'often' })).toThrow(
      expect.objectContaining({ field: 'DECISION_LOG_ALLOW_SAMPLE_RATE' }),
    );
    expect(readWorkerConfig({ DECISION_LOG: 'off' }).decisionLog).toBeNull();
  });

  it('refuses a logger rate outside 0 to 1, naming the option', () => {
    expect(() => new DecisionLogger({ allowSampleRate: 2 })).toThrow(
      expect.objectContaining({ name: 'ConfigError', field: 'allowSampleRate' }),
    );
    expect(() => new DecisionLogger({ allowSampleRate: Number.NaN })).toThrow(ConfigError);
  });
});

describe('token digest on Node', () => {
  it('hashes with node:crypto, not WebCrypto (whose digest costs a thread-pool round trip)', async () => {
    const digest = vi.spyOn(crypto.subtle, 'digest');
    try {
      const token = `${'a'.repeat(40)}.${'b'.repeat(80)}.${'c'.repeat(86)}`;
      expect(await tokenDigest(token)).toBe(sha256Prefix(token));
      expect(digest).not.toHaveBeenCalled();
    } finally {
      digest.mockRestore();
    }
  });
});
