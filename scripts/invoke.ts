/**
 * `npm run invoke -- events/<name>.json [--mode principal|route] [--iam]`: runs the Lambda
 * authorizer locally against an embedded, in-memory DynamoDB-compatible server (dynalite) seeded
 * with demo/permissions.json, the same data `npm start` serves. `{{token:<subject>}}` in the event
 * becomes a fresh demo token (HS256, GATEHOUSE_DEV_SECRET from .dev.vars, else a secret generated
 * for this run). Prints the authorizer's answer, or what API Gateway would make of an error.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import dynalite from 'dynalite';
import * as jose from 'jose';
import type { AuthorizerEvent } from '../src/adapters/apigateway.ts';
import { createLambdaHandler } from '../src/adapters/apigateway-lambda.ts';
import {
  createDynamoDBClient,
  createPermissionTable,
  writePermissionData,
} from '../src/stores/dynamodb.ts';
import { parsePermissionData } from '../src/stores/file.ts';

const ISSUER = 'https://dev.gatehouse.local/';
const AUDIENCE = 'https://blog.gatehouse.local';
const TABLE = 'gatehouse-local';

function usage(): never {
  console.error('usage: npm run invoke -- events/<name>.json [--mode principal|route] [--iam]');
  process.exit(2);
}

function devSecret(): { secret: string; from: string } {
  if (existsSync('.dev.vars')) {
    for (const line of readFileSync('.dev.vars', 'utf8').split(/\r?\n/)) {
      const m = /^\s*GATEHOUSE_DEV_SECRET\s*=\s*"?([^"]*)"?\s*$/.exec(line);
      if (m?.[1]) return { secret: m[1], from: '.dev.vars' };
    }
  }
  return { secret: randomBytes(32).toString('base64url'), from: 'generated for this run' };
}

async function mint(subject: string, secret: string): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new jose.SignJWT({})
    .setProtectedHeader({ alg: 'HS256', kid: 'dev', typ: 'JWT' })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject(subject)
    .setIssuedAt(now)
    .setExpirationTime(now + 600)
    .sign(new TextEncoder().encode(secret));
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const file = args.find((a) => !a.startsWith('--') && args[args.indexOf(a) - 1] !== '--mode');
  if (!file) usage();
  const modeAt = args.indexOf('--mode');
  const { secret, from } = devSecret();

  let text = readFileSync(file, 'utf8');
  const subjects = new Set([...text.matchAll(/\{\{token:([^}]+)\}\}/g)].map((m) => m[1]!));
  for (const subject of subjects) {
    text = text.replaceAll(`{{token:${subject}}}`, await mint(subject, secret));
  }
  const event = JSON.parse(text) as AuthorizerEvent & { type?: string };
  const mode = modeAt >= 0 ? args[modeAt + 1] : event.type === 'TOKEN' ? 'principal' : 'route';

  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const client = createDynamoDBClient({
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    region: 'eu-west-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  try {
    await createPermissionTable(client, TABLE);
    const items = await writePermissionData(
      client,
      TABLE,
      parsePermissionData(readFileSync('demo/permissions.json', 'utf8'), 'demo/permissions.json'),
    );
    const handler = createLambdaHandler({
      policy: JSON.parse(readFileSync('demo/policy.json', 'utf8')),
      env: {
        TABLE_NAME: TABLE,
        GATEHOUSE_DEV_SECRET: secret,
        AUTHORIZER_MODE: mode,
        HTTP_API_RESPONSE: args.includes('--iam') ? 'iam' : 'simple',
        AUTHORIZER_TTL_SECONDS: '300',
      },
      client,
      log: (entry) => console.error(`log: ${JSON.stringify(entry)}`),
    });
    console.error(
      `gatehouse: ${file} (${mode} mode), ${items} items seeded, dev secret ${from}, tokens for ${[...subjects].join(', ') || 'nobody'}`,
    );
    try {
      console.log(JSON.stringify(await handler(event), null, 2));
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      const status = message === 'Unauthorized' ? 401 : 500;
      console.log(JSON.stringify({ thrown: message, apiGatewayStatus: status }, null, 2));
    }
  } finally {
    client.destroy();
    server.close();
  }
}

await main();
