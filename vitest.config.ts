import { generateKeyPairSync } from 'node:crypto';
import { cloudflareTest } from '@cloudflare/vitest-plugin';
import { defineConfig } from 'vitest/config';

// Every suite in one run: the core in Node, the core and the Worker inside workerd (through
// the Workers Vitest integration), the AWS edge against a local DynamoDB-compatible server,
// and end-to-end tests that start real processes on loopback.

// Decision log lines (every deny the suites provoke) and skipped-JWKS-key lines (every bad key
// the suites serve) are kept out of the test output; the tests that are about them capture the
// console themselves.
const quietDecisionLines = (log: string) =>
  log.includes('gatehouse.decision') || log.includes('gatehouse.jwks_key_skipped')
    ? false
    : undefined;

/** Answers with the request it received: what a service binding delivered, as JSON. */
async function echoServiceBinding(request: Request): Promise<Response> {
  const headers: Record<string, string> = {};
  request.headers.forEach((value, name) => {
    headers[name] = value;
  });
  const body = request.method === 'GET' || request.method === 'HEAD' ? null : await request.text();
  return Response.json({ method: request.method, url: request.url, headers, body });
}

/** A delegation key set generated per run (the demo policy delegates), as npm start writes it. */
function delegationKeys(): string {
  const key = (kid: string) => ({
    ...generateKeyPairSync('ed25519').privateKey.export({ format: 'jwk' }),
    kid,
    alg: 'EdDSA',
  });
  return JSON.stringify({ current: key('test-current'), next: key('test-next') });
}

export default defineConfig({
  test: {
    onConsoleLog: quietDecisionLines,
    projects: [
      {
        test: {
          name: 'node',
          include: ['test/unit/**/*.test.ts'],
          environment: 'node',
          testTimeout: 20_000,
        },
      },
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: './wrangler.toml' },
            // A dev secret for the demo issuer in tests (never a real one; .dev.vars is absent in CI).
            miniflare: {
              bindings: {
                GATEHOUSE_DEV_SECRET: 'workers-test-secret-0123456789abcdef-0123',
                GATEHOUSE_DELEGATION_KEYS: delegationKeys(),
              },
              // wrangler.toml binds ADMIN to the admin Worker, which this project does not run:
              // here the binding answers with what crossed it (method, URL, headers, body), so
              // test/workers/admin-forward.test.ts sees exactly what the guard forwards.
              serviceBindings: { ADMIN: echoServiceBinding },
            },
          }),
        ],
        // wrangler.toml's [alias] applies to wrangler builds only; Vite needs its own.
        resolve: {
          alias: { 'gatehouse:policy': new URL('./demo/policy.json', import.meta.url).pathname },
        },
        test: {
          name: 'workers',
          include: ['test/workers/**/*.test.ts'],
          // Starts a real JWKS server on 127.0.0.1 in Node and hands its URL to the tests.
          globalSetup: ['./test/workers/global-setup.ts'],
          testTimeout: 20_000,
        },
      },
      {
        test: {
          name: 'aws',
          include: ['test/aws/**/*.test.ts'],
          environment: 'node',
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: 'e2e',
          include: ['test/e2e/**/*.test.ts'],
          environment: 'node',
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
