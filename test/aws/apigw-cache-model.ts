/**
 * A model of API Gateway's authorizer cache, to replay request sequences through the authorizer
 * as API Gateway would: an answer is cached per identity source for the TTL and, while fresh, its
 * IAM policy is evaluated against every later request's method ARN instead of calling the
 * authorizer (explicit Deny wins; `*` matches any run of characters, `/` included; `?` exactly
 * one). Thrown errors (401 / 500) are not cached.
 *
 * A Resource longer than API Gateway's 512-character ARN limit is modelled the way that hurts
 * most: a Deny holding one never matches (as if dropped), an Allow matches as written. A policy
 * builder that needs such a Deny therefore leaks here.
 *
 * The matcher here is written independently of src/aws (a regex per pattern) so that the
 * model is an oracle, not a copy of the code under test.
 */
import type { AuthorizerEvent, AuthorizerResponse } from '../../src/aws/authorizer.ts';

export interface ModelRequest {
  /** The event API Gateway would send on a cache miss. */
  readonly event: AuthorizerEvent;
  /** The method (or route) ARN the request is checked against. */
  readonly arn: string;
  /** The identity-source values that key the cache. */
  readonly identity: readonly string[];
  /** Model time, ms. */
  readonly at: number;
}

export type Answer = { readonly allow: boolean; readonly status: 200 | 401 | 403 | 500 };

/** API Gateway's limit on one ARN in a policy, characters. */
export const MAX_RESOURCE_LENGTH = 512;

const patterns = new Map<string, RegExp>();

function regexBody(pattern: string): string {
  return pattern.replace(/[\\^$.*+?()[\]{}|/]/g, (c) =>
    c === '*' ? '.*' : c === '?' ? '.' : `\\${c}`,
  );
}

function toRegExp(pattern: string): RegExp {
  let re = patterns.get(pattern);
  if (!re) {
    re = new RegExp(`^${regexBody(pattern)}$`, 's');
    patterns.set(pattern, re);
  }
  return re;
}

/** One alternation per statement (a sweep evaluates each cached policy thousands of times). */
const statementRegExps = new WeakMap<object, RegExp | null>();

function resourcesRegExp(statement: { Effect: string; Resource: string | string[] }) {
  if (statementRegExps.has(statement)) return statementRegExps.get(statement)!;
  const resources = Array.isArray(statement.Resource) ? statement.Resource : [statement.Resource];
  const effective =
    statement.Effect === 'Deny'
      ? resources.filter((r) => r.length <= MAX_RESOURCE_LENGTH)
      : resources;
  const re =
    effective.length === 0 ? null : new RegExp(`^(?:${effective.map(regexBody).join('|')})$`, 's');
  statementRegExps.set(statement, re);
  return re;
}

/** IAM evaluation of an authorizer's policy document for one ARN. */
export function evaluatePolicy(response: AuthorizerResponse, arn: string): Answer {
  if ('isAuthorized' in response) {
    return response.isAuthorized ? { allow: true, status: 200 } : { allow: false, status: 403 };
  }
  let allowed = false;
  for (const statement of response.policyDocument.Statement) {
    const s = statement as {
      Effect: string;
      Action: string | string[];
      Resource: string | string[];
    };
    const actions = Array.isArray(s.Action) ? s.Action : [s.Action];
    if (!actions.some((a) => toRegExp(a).test('execute-api:Invoke'))) continue;
    if (!resourcesRegExp(s)?.test(arn)) continue;
    if (s.Effect === 'Deny') return { allow: false, status: 403 };
    if (s.Effect === 'Allow') allowed = true;
  }
  return allowed ? { allow: true, status: 200 } : { allow: false, status: 403 };
}

/** Calls the authorizer uncached and maps its answer the way API Gateway does. */
export async function uncached(
  handler: (event: AuthorizerEvent) => Promise<AuthorizerResponse>,
  event: AuthorizerEvent,
  arn: string,
): Promise<{ answer: Answer; response?: AuthorizerResponse }> {
  try {
    const response = await handler(event);
    return { answer: evaluatePolicy(response, arn), response };
  } catch (error) {
    const unauthorized = error instanceof Error && error.message === 'Unauthorized';
    return { answer: { allow: false, status: unauthorized ? 401 : 500 } };
  }
}

export class ApiGatewayCacheModel {
  readonly #handler: (event: AuthorizerEvent) => Promise<AuthorizerResponse>;
  readonly #ttlMs: number;
  readonly #cache = new Map<string, { response: AuthorizerResponse; at: number }>();
  invocations = 0;

  constructor(
    handler: (event: AuthorizerEvent) => Promise<AuthorizerResponse>,
    ttlSeconds: number,
  ) {
    this.#handler = handler;
    this.#ttlMs = ttlSeconds * 1000;
  }

  /** The answer API Gateway gives this request, from the cache when a fresh entry exists. */
  async request(r: ModelRequest): Promise<Answer & { cached: boolean }> {
    const key = JSON.stringify(r.identity);
    const hit = this.#cache.get(key);
    if (hit && this.#ttlMs > 0 && r.at - hit.at < this.#ttlMs) {
      return { ...evaluatePolicy(hit.response, r.arn), cached: true };
    }
    this.invocations++;
    const { answer, response } = await uncached(this.#handler, r.event, r.arn);
    if (response && this.#ttlMs > 0) this.#cache.set(key, { response, at: r.at });
    return { ...answer, cached: false };
  }
}
