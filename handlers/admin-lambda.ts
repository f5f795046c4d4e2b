/**
 * AWS Lambda entry point for the admin API (optional: template.yaml's EnableAdminApi), behind
 * API Gateway next to the authorizer. Thin wiring only: the policy bundled at build time,
 * configuration from the environment, the DynamoDB client created once per container.
 * Behaviour lives in src/aws/admin-lambda.ts and admin-api.ts; docs/admin-api.md.
 */
import policy from '../demo/policy.json' with { type: 'json' };
import { createAdminLambdaHandler } from '../src/aws/admin-lambda.ts';

export const handler = createAdminLambdaHandler({ policy, env: process.env });
