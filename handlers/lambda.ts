/**
 * AWS Lambda entry point for the API Gateway authorizer (REST TOKEN / REQUEST, HTTP API 2.0).
 * Thin wiring only: the policy bundled at build time, configuration from the environment, the
 * DynamoDB client created once per container. Behaviour lives in src/aws/ (authorizer.ts, iam-policy.ts, lambda.ts).
 */
import policy from '../demo/policy.json' with { type: 'json' };
import { createLambdaHandler } from '../src/aws/lambda.ts';

export const handler = createLambdaHandler({ policy, env: process.env });
