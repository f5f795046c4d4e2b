/**
 * AWS Lambda entry point for Gatehouse's token endpoint and JWKS document (template.yaml's
 * TokenFunction). Thin wiring only: the policy bundled at build time, configuration from the
 * environment (the delegation key set from Secrets Manager). Behaviour lives in
 * src/aws/token-lambda.ts and src/http/token-exchange.ts.
 */
import policy from '../demo/policy.json' with { type: 'json' };
import { createTokenLambdaHandler } from '../src/aws/token-lambda.ts';

export const handler = createTokenLambdaHandler({ policy, env: process.env });
