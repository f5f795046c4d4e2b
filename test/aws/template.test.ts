/**
 * template.yaml agrees with the code: handler paths, environment variable names, the table's key
 * schema and TTL attribute. CloudFormation's short tags are parsed with yaml customTags.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { parse, type Tags } from 'yaml';
import { ADMIN_ENV } from '../../src/aws/admin-lambda.ts';
import {
  createDynamoDBClient,
  PARTITION_KEY,
  SORT_KEY,
  TABLE_DEFINITION,
  TTL_ATTRIBUTE,
} from '../../src/aws/dynamodb-store.ts';
import { createLambdaHandler, ENV } from '../../src/aws/lambda.ts';
import { TOKEN_ENV } from '../../src/aws/token-lambda.ts';
import { DEFAULT_ADMIN_BASE_PATH } from '../../src/http/admin-api.ts';
import { applyIssuerEnv, ISSUER_ENV } from '../../src/policy/issuer-env.ts';
import { DEMO_POLICY, read } from './support.ts';

const CFN_TAGS = [
  'Ref',
  'Sub',
  'GetAtt',
  'If',
  'Join',
  'Select',
  'Split',
  'Equals',
  'Not',
  'And',
  'Or',
  'FindInMap',
  'ImportValue',
  'Condition',
  'Base64',
  'GetAZs',
  'Cidr',
];
const customTags: Tags = CFN_TAGS.flatMap(
  (name) =>
    (['scalar', 'seq', 'map'] as const).map((collection) => ({
      tag: `!${name}`,
      collection: collection === 'scalar' ? undefined : collection,
      resolve: (value: unknown) => ({ [`Fn::${name}`]: value }),
    })) as Tags,
) as Tags;

// biome-ignore lint/suspicious/noExplicitAny: CloudFormation documents are free-form
type Free = any;
const template: Free = parse(read('template.yaml'), { customTags });
const resources = template.Resources as Record<
  string,
  { Type: string; Properties: Free; Metadata?: Free }
>;
const functions = Object.entries(resources).filter(
  ([, r]) => r.Type === 'AWS::Serverless::Function' && r.Metadata?.BuildMethod === 'esbuild',
);
const entryOf = (fn: { Metadata?: Free }) => fn.Metadata.BuildProperties.EntryPoints[0] as string;
const authorizers = functions.filter(([, fn]) => entryOf(fn) === 'handlers/lambda.ts');

describe('template.yaml', () => {
  it('has the authorizer functions bundled with esbuild from handlers/lambda.ts', () => {
    expect(functions.length).toBeGreaterThanOrEqual(1);
    for (const [, fn] of functions) {
      const entry = fn.Metadata.BuildProperties.EntryPoints[0] as string;
      expect(existsSync(new URL(`../../${entry}`, import.meta.url))).toBe(true);
      const base = entry.split('/').at(-1)!.replace(/\.ts$/, '');
      expect(fn.Properties.Handler).toBe(`${base}.handler`);
      expect(template.Globals.Function.Runtime).toMatch(/^nodejs2[24]\.x$/);
      expect(template.Globals.Function.Architectures).toEqual(['arm64']);
      expect(fn.Metadata.BuildProperties.External).toContain('@aws-sdk/*');
    }
  });

  it('sets only environment variables the handler reads', () => {
    const known = new Set<string>([
      ...Object.values(ENV),
      'GATEHOUSE_DEV_SECRET',
      'GATEHOUSE_DELEGATION_KEYS',
    ]);
    const adminKnown = new Set<string>([...known, ...Object.values(ADMIN_ENV)]);
    const tokenKnown = new Set<string>([...known, ...Object.values(TOKEN_ENV)]);
    expect(authorizers.length).toBe(2);
    for (const [, fn] of functions) {
      const entry = entryOf(fn);
      const expected =
        entry === 'handlers/admin-lambda.ts'
          ? adminKnown
          : entry === 'handlers/token-lambda.ts'
            ? tokenKnown
            : known;
      for (const name of Object.keys(fn.Properties.Environment.Variables))
        expect(expected).toContain(name);
      expect(fn.Properties.Environment.Variables.TABLE_NAME).toEqual({
        'Fn::Ref': 'PermissionsTable',
      });
    }
    for (const [, fn] of authorizers) {
      expect(['principal', 'route']).toContain(fn.Properties.Environment.Variables.AUTHORIZER_MODE);
    }
  });

  it('deploys the admin API only when EnableAdminApi is true, behind the HTTP API authorizer', () => {
    const admin = resources.AdminFunction as Free;
    expect(entryOf(admin)).toBe('handlers/admin-lambda.ts');
    expect(template.Parameters.EnableAdminApi.Default).toBe('false');
    expect(admin.Condition).toBe('AdminApiEnabled');
    // A tag on a flow sequence resolves to a YAML node here; its JSON is the plain value.
    expect(JSON.parse(JSON.stringify(template.Conditions.AdminApiEnabled))).toEqual({
      'Fn::Equals': [{ 'Fn::Ref': 'EnableAdminApi' }, 'true'],
    });
    expect(template.Outputs.AdminApiUrl.Condition).toBe('AdminApiEnabled');
    // Writes need CRUD on the table; the authorizers keep read-only access.
    expect(admin.Properties.Policies).toEqual([
      { DynamoDBCrudPolicy: { TableName: { 'Fn::Ref': 'PermissionsTable' } } },
    ]);
    for (const [, fn] of authorizers) {
      expect(Object.keys(fn.Properties.Policies[0])).toEqual(['DynamoDBReadPolicy']);
    }
    const events = Object.values(admin.Properties.Events) as Free[];
    expect(events).toHaveLength(1);
    const event = events[0];
    expect(event.Type).toBe('HttpApi');
    expect(event.Properties.ApiId).toEqual({ 'Fn::Ref': 'HttpApi' });
    expect(event.Properties.Path).toBe(`${DEFAULT_ADMIN_BASE_PATH}/{proxy+}`);
    // No Auth override: the API's default authorizer (GatehouseLambda) runs first.
    expect(event.Properties.Auth).toBeUndefined();
    expect(resources.HttpApi!.Properties.Auth.DefaultAuthorizer).toBe('GatehouseLambda');
    expect(admin.Properties.Environment.Variables.AUDIT_RETENTION_DAYS).toEqual({
      'Fn::Ref': 'AuditRetentionDays',
    });
    // The same bounds PermissionAdmin accepts.
    expect(template.Parameters.AuditRetentionDays).toMatchObject({ MinValue: 1, MaxValue: 3650 });
  });

  it('fills the delegation keys from Secrets Manager by a dynamic reference, and serves the token endpoint only with them', () => {
    const secretRef = {
      // CloudFormation's own ${} placeholder, not a JavaScript one.
      'Fn::Sub': ['{{resolve:secretsmanager:$', '{DelegationKeysSecret}:SecretString}}'].join(''),
    };
    expect(template.Parameters.DelegationKeysSecret.Default).toBe('');
    for (const [, fn] of functions) {
      const value = JSON.parse(
        JSON.stringify(fn.Properties.Environment.Variables.GATEHOUSE_DELEGATION_KEYS),
      );
      const entry = entryOf(fn);
      // Functions deployed only with the secret read it directly; the others only when it is set.
      if (entry === 'handlers/token-lambda.ts' || entry === 'handlers/events-consumer.ts') {
        expect(value).toEqual(secretRef);
        expect((fn as Free).Condition).toBe('DelegationEnabled');
      } else expect(value).toEqual({ 'Fn::If': ['DelegationEnabled', secretRef, ''] });
    }
    const token = resources.TokenFunction as Free;
    expect(entryOf(token)).toBe('handlers/token-lambda.ts');
    expect(token.Condition).toBe('DelegationEnabled');
    expect(Object.keys(token.Properties.Policies[0])).toEqual(['DynamoDBReadPolicy']);
    const events = Object.values(token.Properties.Events) as Free[];
    expect(events.map((e) => [e.Properties.Method, e.Properties.Path]).sort()).toEqual([
      ['get', '/.gatehouse/jwks.json'],
      ['post', '/.gatehouse/v1/events'],
      ['post', '/.gatehouse/v1/events/verify'],
      ['post', '/.gatehouse/v1/token'],
    ]);
    for (const event of events) {
      expect(event.Properties.ApiId).toEqual({ 'Fn::Ref': 'HttpApi' });
      // The form's tokens are the credentials; the authorizer would demand a route for them.
      expect(event.Properties.Auth).toEqual({ Authorizer: 'NONE' });
    }
  });

  it('feeds the events consumer from a queue, reporting transient failures per record', () => {
    const consumer = resources.EventsConsumerFunction as Free;
    expect(entryOf(consumer)).toBe('handlers/events-consumer.ts');
    // Conditional writes of its processed-event records need more than read access.
    expect(consumer.Properties.Policies).toEqual([
      { DynamoDBCrudPolicy: { TableName: { 'Fn::Ref': 'PermissionsTable' } } },
    ]);
    const source = consumer.Properties.Events.Queue;
    expect(source.Type).toBe('SQS');
    expect(source.Properties.Queue).toEqual({ 'Fn::GetAtt': 'EventsQueue.Arn' });
    expect(source.Properties.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
    const queue = resources.EventsQueue!.Properties;
    // No message outlives the longest event lifetime's default, and redelivery is bounded.
    expect(queue.MessageRetentionPeriod).toBe(86_400);
    expect(queue.VisibilityTimeout).toBeGreaterThanOrEqual(6 * template.Globals.Function.Timeout);
    expect(queue.RedrivePolicy.maxReceiveCount).toBeGreaterThan(1);
    // The example's idempotency lease: only a run the timeout killed lets it end, and it ends
    // while the queue still has receives left, so that event runs again instead of dead-lettering.
    const lease = Number(/leaseSeconds: (\d+)/.exec(read('handlers/events-consumer.ts'))?.[1]);
    expect(lease).toBeGreaterThan(template.Globals.Function.Timeout);
    expect(lease).toBeLessThan((queue.RedrivePolicy.maxReceiveCount - 1) * queue.VisibilityTimeout);
  });

  it('declares the table key schema, TTL and recovery the store expects', () => {
    const table = resources.PermissionsTable!.Properties;
    expect(table.KeySchema).toEqual(TABLE_DEFINITION.KeySchema);
    expect(table.AttributeDefinitions).toEqual(TABLE_DEFINITION.AttributeDefinitions);
    expect(table.KeySchema.map((k: { AttributeName: string }) => k.AttributeName)).toEqual([
      PARTITION_KEY,
      SORT_KEY,
    ]);
    expect(table.BillingMode).toBe('PAY_PER_REQUEST');
    expect(table.TimeToLiveSpecification).toEqual({ AttributeName: TTL_ATTRIBUTE, Enabled: true });
    expect(table.PointInTimeRecoverySpecification.PointInTimeRecoveryEnabled).toBe(true);
  });

  it("matches docs/aws.md's create-table line for a local table to the store's design", () => {
    const doc = read('docs/aws.md');
    const attributes = [...doc.matchAll(/AttributeName=(\w+),AttributeType=(\w+)/g)].map(
      ([, AttributeName, AttributeType]) => ({ AttributeName, AttributeType }),
    );
    const keys = [...doc.matchAll(/AttributeName=(\w+),KeyType=(\w+)/g)].map(
      ([, AttributeName, KeyType]) => ({ AttributeName, KeyType }),
    );
    expect(attributes).toEqual(TABLE_DEFINITION.AttributeDefinitions);
    expect(keys).toEqual(TABLE_DEFINITION.KeySchema);
    expect(doc).toContain(`Enabled=true,AttributeName=${TTL_ATTRIBUTE}`);
    expect(doc).toContain(`--billing-mode ${TABLE_DEFINITION.BillingMode}`);
  });

  it('matches identity sources and TTL to each mode', () => {
    const rest = resources.RestApi!.Properties.Auth.Authorizers;
    expect(
      resources.TokenAuthorizerFunction!.Properties.Environment.Variables.AUTHORIZER_MODE,
    ).toBe('principal');
    expect(rest.GatehouseToken.FunctionArn).toEqual({
      'Fn::GetAtt': 'TokenAuthorizerFunction.Arn',
    });
    expect(rest.GatehouseToken.Identity.Header).toBe('Authorization');
    // Route mode is cached per route and client: method, path and source IP are identity.
    expect(
      resources.RequestAuthorizerFunction!.Properties.Environment.Variables.AUTHORIZER_MODE,
    ).toBe('route');
    expect(rest.GatehouseRequest.Identity.Context).toEqual([
      'httpMethod',
      'path',
      'identity.sourceIp',
    ]);
    const http = resources.HttpApi!.Properties.Auth.Authorizers.GatehouseLambda;
    expect(http.AuthorizerPayloadFormatVersion).toBe('2.0');
    expect(http.EnableSimpleResponses).toBe(true);
    expect(http.Identity.Context).toEqual(['httpMethod', 'path', 'identity.sourceIp']);
    for (const a of [rest.GatehouseToken, rest.GatehouseRequest, http]) {
      expect(a.Identity.ReauthorizeEvery).toEqual({ 'Fn::Ref': 'AuthorizerTtl' });
    }
  });

  it('caps the authorizer cache TTL at 5 minutes (a cached answer outlives token expiry by it)', () => {
    const ttl = template.Parameters.AuthorizerTtl;
    expect(ttl.MaxValue).toBeLessThanOrEqual(300);
    expect(ttl.Default).toBeLessThanOrEqual(ttl.MaxValue);
    expect(ttl.MinValue).toBe(0);
  });

  it('keeps every REST route the sample API exposes in the policy (principal mode assumes it)', () => {
    const policy = JSON.parse(read('demo/policy.json')) as {
      routes: { method?: string | string[]; path: string }[];
    };
    const routes = new Set(
      policy.routes.flatMap((r) =>
        [r.method ?? '*'].flat().map((m) => `${m} ${r.path.replace(/:(\w+)/g, '{$1}')}`),
      ),
    );
    const events = resources.BlogFunction!.Properties.Events as Record<
      string,
      { Type: string; Properties: { Path: string; Method: string } }
    >;
    for (const e of Object.values(events)) {
      if (e.Type !== 'Api') continue;
      expect(routes).toContain(`${e.Properties.Method.toUpperCase()} ${e.Properties.Path}`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Deploy-time checks: what CloudFormation does with parameter values before creating anything.

type Parameters = Record<string, string>;
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The functions CloudFormation allows in Rules (RuleCondition and Assert). */
const RULE_FUNCTIONS = new Set(['Fn::And', 'Fn::Or', 'Fn::Not', 'Fn::Equals', 'Fn::Contains']);
// Tags on flow sequences resolve to YAML nodes; their JSON is the plain value.
const rules: Record<string, { RuleCondition?: Free; Assertions: Free[] }> = JSON.parse(
  JSON.stringify(template.Rules ?? {}),
);

/** Every parameter at its default, then `given`. */
function withDefaults(given: Parameters): Parameters {
  const all: Parameters = {};
  for (const [name, p] of Object.entries(template.Parameters as Record<string, Free>)) {
    all[name] = String(p.Default ?? '');
  }
  for (const name of Object.keys(given)) expect(template.Parameters).toHaveProperty(name);
  return { ...all, ...given };
}

function evaluate(node: Free, params: Parameters): unknown {
  if (typeof node === 'string') return node;
  const [fn, arg] = Object.entries(node as Record<string, Free>)[0]!;
  if (fn === 'Fn::Ref') return params[arg];
  expect(RULE_FUNCTIONS).toContain(fn);
  const args = (arg as Free[]).map((a) => evaluate(a, params));
  if (fn === 'Fn::Equals') return args[0] === args[1];
  if (fn === 'Fn::Not') return !args[0];
  if (fn === 'Fn::And') return args.every(Boolean);
  if (fn === 'Fn::Or') return args.some(Boolean);
  throw new Error(`no evaluator for ${fn}`);
}

/** What CloudFormation says to a parameter set: null when it deploys, else why not. */
function deployCheck(given: Parameters): string | null {
  const params = withDefaults(given);
  for (const [name, p] of Object.entries(template.Parameters as Record<string, Free>)) {
    const value = params[name]!;
    // CloudFormation matches AllowedPattern against the whole value (Java regex).
    if (p.AllowedPattern !== undefined && !new RegExp(`^(?:${p.AllowedPattern})$`).test(value))
      return `${name}: ${p.ConstraintDescription ?? 'pattern'}`;
    if (p.AllowedValues !== undefined && !p.AllowedValues.includes(value)) return name;
  }
  for (const rule of Object.values(rules)) {
    if (rule.RuleCondition !== undefined && !evaluate(rule.RuleCondition, params)) continue;
    for (const a of rule.Assertions) if (!evaluate(a.Assert, params)) return a.AssertDescription;
  }
  return null;
}

/** The authorizer started with the environment the template gives it for these parameters. */
function startWith(given: Parameters) {
  const params = withDefaults(given);
  const variables = resources.TokenAuthorizerFunction!.Properties.Environment.Variables as Record<
    string,
    Free
  >;
  const env: Record<string, string> = {};
  for (const [name, raw] of Object.entries(variables)) {
    let value = JSON.parse(JSON.stringify(raw));
    if (typeof value === 'object' && value['Fn::If'] !== undefined) {
      const [condition, , otherwise] = value['Fn::If'];
      const holds = evaluate(JSON.parse(JSON.stringify(template.Conditions[condition])), params);
      // Secrets Manager is not resolved here: these deployments leave delegation off.
      if (holds) throw new Error(`${name}: a dynamic reference this test does not resolve`);
      value = otherwise;
    }
    const ref = typeof value === 'object' ? value['Fn::Ref'] : undefined;
    env[name] = ref === undefined ? String(value) : (params[ref] ?? `${ref}-physical-id`);
  }
  const client = createDynamoDBClient({
    endpoint: 'http://127.0.0.1:9',
    region: 'eu-west-1',
    credentials: { accessKeyId: 'l', secretAccessKey: 'l' },
  });
  const handler = createLambdaHandler({ policy: DEMO_POLICY, env, client, log: () => {} });
  client.destroy();
  return handler.configError;
}

const IDP = {
  IssuerUrl: 'https://id.example/',
  Audience: 'https://api.example',
  JwksUrl: 'https://id.example/.well-known/jwks.json',
};
const DEV = { DevSecret: 'd'.repeat(32) };

describe('template.yaml parameters at deploy time', () => {
  it('refuses the default parameters, whose stack would answer 500 to every request', () => {
    expect(deployCheck({})).toMatch(/IssuerUrl/);
    expect(startWith({})).toBeDefined();
  });

  it.each([
    ['an identity provider', IDP],
    ['the demo issuer', DEV],
    [
      'the RFC 9068 recipe with JWKS timings',
      {
        ...IDP,
        TokenTypes: 'at+jwt',
        RequireTokenType: 'true',
        JwksCacheTtlSeconds: '300',
        JwksCooldownSeconds: '60',
        JwksTimeoutMs: '1500',
        JwksMaxStaleSeconds: '3600',
      },
    ],
    ['several types, one with application/', { ...DEV, TokenTypes: 'application/at+jwt, JWT' }],
  ])('deploys %s, and the authorizer then starts cleanly', (_name, given: Parameters) => {
    expect(deployCheck(given)).toBeNull();
    expect(startWith(given)).toBeUndefined();
  });

  it.each([
    ['IssuerUrl without Audience', { IssuerUrl: IDP.IssuerUrl, JwksUrl: IDP.JwksUrl }, /Audience/],
    ['IssuerUrl without JwksUrl', { IssuerUrl: IDP.IssuerUrl, Audience: IDP.Audience }, /JwksUrl/],
    ['a DevSecret next to an IssuerUrl', { ...IDP, ...DEV }, /DevSecret/],
    ['a DevSecret under 32 characters', { DevSecret: 'd'.repeat(31) }, /32/],
    ['an http JWKS URL', { ...IDP, JwksUrl: 'http://id.example/jwks' }, /https/],
    ['Audience without IssuerUrl', { ...DEV, Audience: IDP.Audience }, /IssuerUrl/],
    ['a JWKS timing for the demo issuer', { ...DEV, JwksTimeoutMs: '500' }, /demo issuer/],
    ['a typ list with a space inside', { ...IDP, TokenTypes: 'at jwt' }, /typ/],
    ['RequireTokenType yes', { ...IDP, RequireTokenType: 'yes' }, /RequireTokenType/],
    ['a negative timing', { ...IDP, JwksCacheTtlSeconds: '-1' }, /JwksCacheTtlSeconds/],
  ])('refuses %s with a message saying what to set', (_name, given: Parameters, message) => {
    expect(deployCheck(given)).toMatch(message);
  });

  it('accepts in TokenTypes exactly what the function accepts in GATEHOUSE_TYPES', () => {
    const pattern = new RegExp(`^(?:${template.Parameters.TokenTypes.AllowedPattern})$`);
    const samples = [
      'at+jwt',
      'JWT,at+jwt',
      'at+jwt , JWT',
      'application/at+jwt',
      'dpop+jwt',
      'at jwt',
      'at+jwt,',
      ',at+jwt',
      'application/x/at+jwt',
      '/jwt',
      'at+jwt;q=1',
    ];
    for (const types of samples) {
      let codeAccepts = true;
      try {
        applyIssuerEnv(DEMO_POLICY, (name) => (name === ISSUER_ENV.types ? types : undefined));
      } catch {
        codeAccepts = false;
      }
      expect(pattern.test(types), types).toBe(codeAccepts);
    }
  });

  it('passes every issuer parameter to every function that verifies tokens', () => {
    const wanted = {
      GATEHOUSE_TYPES: 'TokenTypes',
      GATEHOUSE_REQUIRE_TYPE: 'RequireTokenType',
      GATEHOUSE_JWKS_CACHE_TTL_SECONDS: 'JwksCacheTtlSeconds',
      GATEHOUSE_JWKS_COOLDOWN_SECONDS: 'JwksCooldownSeconds',
      GATEHOUSE_JWKS_TIMEOUT_MS: 'JwksTimeoutMs',
      GATEHOUSE_JWKS_MAX_STALE_SECONDS: 'JwksMaxStaleSeconds',
    };
    expect(Object.keys(wanted).sort()).toEqual(Object.values(ISSUER_ENV).sort());
    for (const [, fn] of functions) {
      for (const [variable, parameter] of Object.entries(wanted)) {
        expect(fn.Properties.Environment.Variables[variable]).toEqual({ 'Fn::Ref': parameter });
      }
    }
  });
});

describe('template.yaml build artifacts', () => {
  it('builds every function from a bundle or inline code, never by copying the project', () => {
    for (const [name, r] of Object.entries(resources)) {
      if (r.Type !== 'AWS::Serverless::Function') continue;
      // Any other build method copies the whole CodeUri (tests, .wrangler/, .dev.vars) into
      // the artifact; esbuild writes only the bundle.
      if (r.Properties.InlineCode !== undefined) expect(r.Properties.CodeUri, name).toBeUndefined();
      else expect(r.Metadata?.BuildMethod, name).toBe('esbuild');
    }
  });

  it.each(functions.map(([name, fn]) => [name, fn] as const))(
    '%s: the artifact is one bundle built from src/, handlers/, demo/ and dependencies only',
    async (_name, fn) => {
      // The same esbuild call sam build makes (aws-lambda-builders' esbuild workflow).
      const props = fn.Metadata.BuildProperties as Free;
      const outdir = mkdtempSync(join(tmpdir(), 'gatehouse-sam-'));
      try {
        const result = await build({
          absWorkingDir: ROOT,
          entryPoints: props.EntryPoints,
          bundle: true,
          platform: 'node',
          outdir,
          format: props.Format,
          target: props.Target,
          minify: props.Minify,
          sourcemap: props.Sourcemap,
          external: props.External,
          outExtension: Object.fromEntries(
            (props.OutExtension as string[]).map((e) => e.split('=') as [string, string]),
          ),
          metafile: true,
          logLevel: 'silent',
        });
        const handlerFile = `${String(fn.Properties.Handler).split('.')[0]}.mjs`;
        expect(readdirSync(outdir)).toEqual([handlerFile]);
        const inputs = Object.keys(result.metafile.inputs).map((p) =>
          relative(ROOT, join(ROOT, p)),
        );
        expect(inputs.length).toBeGreaterThan(1);
        for (const input of inputs) {
          expect(input).toMatch(/^(src|handlers|demo|node_modules)\//);
          expect(input).not.toMatch(/(^|\/)(test|\.wrangler)\/|\.dev\.vars|\.test\.ts$/);
        }
      } finally {
        rmSync(outdir, { recursive: true, force: true });
      }
    },
  );
});
