/**
 * `npm run invoke -- <event.json> [--policy <file>] [--permissions <file>] [--mode principal|route]
 * [--iam]`: runs the Lambda authorizer locally, built by the same cold-start code as the deployed
 * function (createLambdaHandler) from the same environment variables (GATEHOUSE_ISSUER,
 * GATEHOUSE_TYPES, AUTHORIZER_MODE, ...: docs/aws.md, Configuration reference), against an
 * embedded DynamoDB-compatible server (dynalite) seeded with the permissions file.
 *
 * `--policy` stands for the policy the deployment bundles (default demo/policy.json); YAML or
 * JSON. `{{token:<subject>}}` in the event becomes a fresh token of the policy's development
 * issuer (the one with `keys.secretEnv`), signed with that variable's value from the environment,
 * then .dev.vars, else a secret generated for this run. Prints the authorizer's answer, or what
 * API Gateway would make of an error. Usage mistakes and unreadable files: one line, exit 2.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import dynalite from 'dynalite';
import * as jose from 'jose';
import type { AuthorizerEvent } from '../src/aws/authorizer.ts';
import {
  createDynamoDBClient,
  createPermissionTable,
  writePermissionData,
} from '../src/aws/dynamodb-store.ts';
import { createLambdaHandler, ENV, effectivePolicy } from '../src/aws/lambda.ts';
import { flag, parseArgs, stringOption } from '../src/cli/args.ts';
import { parseDotenv, UsageError } from '../src/cli/io.ts';
import { type DevIssuer, devIssuer } from '../src/cli/token.ts';
import { ConfigError } from '../src/errors.ts';
import { parsePolicyText } from '../src/policy/text.ts';
import { parsePermissionData } from '../src/stores/permission-data.ts';
import { normalizeMediaType } from '../src/token/precheck.ts';

const TABLE = 'gatehouse-local';
const USAGE =
  'usage: npm run invoke -- <event.json> [--policy <file>] [--permissions <file>] [--mode principal|route] [--iam]';

/** A mistake in how the tool was called or in a file it was given: one line, exit 2. */
class InvokeError extends Error {}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : 'unreadable';
    throw new InvokeError(`${what} ${file}: ${why}`);
  }
}

/** JSON.parse's complaint without the quoted excerpt V8 adds, which may hold a pasted token. */
function jsonProblem(error: unknown): string {
  const message = error instanceof Error ? error.message : 'unreadable';
  const excerpt = message.indexOf(', "');
  return excerpt === -1 ? message : message.slice(0, excerpt);
}

function devSecret(name: string): { secret: string; from: string } {
  const fromEnv = process.env[name];
  if (fromEnv) return { secret: fromEnv, from: `${name} from the environment` };
  if (existsSync('.dev.vars')) {
    const value = parseDotenv(readFileSync('.dev.vars', 'utf8'))[name];
    if (value) return { secret: value, from: `${name} from .dev.vars` };
  }
  return { secret: randomBytes(32).toString('base64url'), from: `${name} generated for this run` };
}

/** The `typ` a token needs to pass the issuer: `JWT` where it is accepted, else the first type. */
function typFor(policy: unknown, issuer: string): string {
  const issuers = (policy as { issuers?: unknown }).issuers;
  const entry = Array.isArray(issuers)
    ? (issuers as { issuer?: unknown; types?: unknown }[]).find((i) => i.issuer === issuer)
    : undefined;
  const types = Array.isArray(entry?.types) ? (entry.types as string[]) : null;
  if (types === null || types.length === 0) return 'JWT';
  return types.some((t) => normalizeMediaType(t) === 'jwt') ? 'JWT' : types[0]!;
}

async function mint(subject: string, issuer: DevIssuer, typ: string, secret: string) {
  const now = Math.floor(Date.now() / 1000);
  const jwt = new jose.SignJWT({})
    .setProtectedHeader({
      alg: issuer.algorithm,
      typ,
      ...(issuer.kid !== undefined && { kid: issuer.kid }),
    })
    .setIssuer(issuer.issuer)
    .setSubject(subject)
    .setIssuedAt(now)
    .setExpirationTime(now + 600);
  if (issuer.audience !== undefined) jwt.setAudience(issuer.audience);
  return jwt.sign(new TextEncoder().encode(secret));
}

async function main(): Promise<void> {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs(process.argv.slice(2), {
      policy: { value: true },
      permissions: { value: true },
      mode: { value: true },
      iam: {},
    });
  } catch (error) {
    if (error instanceof UsageError) throw new InvokeError(`${error.message}; ${USAGE}`);
    throw error;
  }
  if (parsed.positionals.length !== 1) {
    throw new InvokeError(
      `${parsed.positionals.length === 0 ? 'no event file' : 'one event file at a time'}; ${USAGE}`,
    );
  }
  const file = parsed.positionals[0]!;
  const modeFlag = stringOption(parsed, 'mode');
  if (modeFlag !== undefined && modeFlag !== 'principal' && modeFlag !== 'route') {
    throw new InvokeError(`--mode expects principal or route, not ${JSON.stringify(modeFlag)}`);
  }
  const policyFile = stringOption(parsed, 'policy') ?? 'demo/policy.json';
  const permissionsFile = stringOption(parsed, 'permissions') ?? 'demo/permissions.json';

  // Files first, each reported in one line naming it.
  let text = readText(file, 'event');
  let event: AuthorizerEvent & { type?: string };
  try {
    // Placeholders sit inside JSON strings, so the text parses as it is.
    event = JSON.parse(text);
  } catch (error) {
    throw new InvokeError(`event ${file}: not valid JSON (${jsonProblem(error)})`);
  }
  if (typeof event !== 'object' || event === null || Array.isArray(event)) {
    throw new InvokeError(`event ${file}: expected an API Gateway authorizer event object`);
  }
  let policy: unknown;
  try {
    policy = parsePolicyText(readText(policyFile, 'policy'), policyFile);
  } catch (error) {
    if (error instanceof ConfigError) throw new InvokeError(`policy ${error.message}`);
    throw error;
  }
  const permissionsText = readText(permissionsFile, 'permissions');

  // The deployed function's variables, with the table pointed at the embedded server.
  const env: Record<string, string | undefined> = { ...process.env, [ENV.tableName]: TABLE };
  if (modeFlag !== undefined) env[ENV.mode] = modeFlag;
  else if (!env[ENV.mode]) env[ENV.mode] = event.type === 'TOKEN' ? 'principal' : 'route';
  if (flag(parsed, 'iam')) env[ENV.httpApiResponse] = 'iam';

  const subjects = [...new Set([...text.matchAll(/\{\{token:([^}]+)\}\}/g)].map((m) => m[1]!))];
  let secretNote = 'no tokens minted';
  let effective: unknown = null;
  try {
    effective = effectivePolicy(policy, env);
  } catch {
    // The handler below reports the same configuration error in its own words.
  }
  if (effective !== null) {
    let issuer: DevIssuer | undefined;
    try {
      issuer = devIssuer(effective);
    } catch {
      if (subjects.length > 0) {
        throw new InvokeError(
          `event ${file}: {{token:...}} needs a development issuer (keys.secretEnv) in the policy; put a real token in the event instead`,
        );
      }
    }
    if (issuer !== undefined) {
      const { secret, from } = devSecret(issuer.secretEnv);
      env[issuer.secretEnv] = secret;
      secretNote = `dev secret ${from}`;
      const typ = typFor(effective, issuer.issuer);
      for (const subject of subjects) {
        text = text.replaceAll(`{{token:${subject}}}`, await mint(subject, issuer, typ, secret));
      }
      event = JSON.parse(text);
    }
  }

  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  const client = createDynamoDBClient({
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    region: 'eu-west-1',
    credentials: { accessKeyId: 'local', secretAccessKey: 'local' },
  });
  try {
    await createPermissionTable(client, TABLE);
    let items: number;
    try {
      items = await writePermissionData(
        client,
        TABLE,
        parsePermissionData(permissionsText, permissionsFile),
      );
    } catch (error) {
      if (error instanceof ConfigError) throw new InvokeError(`permissions ${error.message}`);
      throw error;
    }
    // Start-up lines wait until start-up succeeded: a configuration error is reported once, below.
    const print = (entry: Record<string, unknown>) =>
      console.error(`log: ${JSON.stringify(entry)}`);
    let held: Record<string, unknown>[] | null = [];
    const handler = createLambdaHandler({
      policy,
      env,
      client,
      log: (entry) => (held === null ? print(entry) : held.push(entry)),
    });
    const startup: Record<string, unknown>[] = held;
    held = null;
    if (handler.configError === undefined) startup.forEach(print);
    else {
      const e = handler.configError;
      const where = e instanceof ConfigError ? `${e.field}: ${e.expected}` : 'unexpected error';
      throw new InvokeError(
        `configuration error (the deployed function would answer 500): ${where}`,
      );
    }
    console.error(
      `gatehouse: ${file} (${env[ENV.mode]} mode), policy ${policyFile}, ${items} items from ${permissionsFile}, ${secretNote}, tokens for ${subjects.join(', ') || 'nobody'}`,
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

try {
  await main();
} catch (error) {
  if (!(error instanceof InvokeError)) throw error;
  console.error(`invoke: ${error.message}`);
  process.exitCode = 2;
}
