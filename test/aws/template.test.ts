/**
 * template.yaml agrees with the code: handler paths, environment variable names, the table's key
 * schema and TTL attribute. CloudFormation's short tags are parsed with yaml customTags.
 */
import { existsSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse, type Tags } from 'yaml';
import { DEFAULT_ADMIN_BASE_PATH } from '../../src/adapters/admin-api.ts';
import { ADMIN_ENV } from '../../src/adapters/admin-lambda.ts';
import { ENV } from '../../src/adapters/apigateway-lambda.ts';
import {
  PARTITION_KEY,
  SORT_KEY,
  TABLE_DEFINITION,
  TTL_ATTRIBUTE,
} from '../../src/stores/dynamodb.ts';
import { read } from './support.ts';

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
    const known = new Set<string>([...Object.values(ENV), 'GATEHOUSE_DEV_SECRET']);
    const adminKnown = new Set<string>([...known, ...Object.values(ADMIN_ENV)]);
    expect(authorizers.length).toBe(2);
    for (const [, fn] of functions) {
      const admin = entryOf(fn) === 'handlers/admin-lambda.ts';
      for (const name of Object.keys(fn.Properties.Environment.Variables))
        expect(admin ? adminKnown : known).toContain(name);
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
