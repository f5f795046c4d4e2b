/**
 * Forward authentication for reverse proxies (nginx `auth_request`, Traefik ForwardAuth, Caddy
 * `forward_auth`): the proxy asks with the original method and URI in `X-Forwarded-Method` /
 * `X-Forwarded-Uri` and the client's Authorization header; the answer is 200 with identity
 * headers, 401 with a challenge, 403, or 400 / 503 (which proxies treat as errors: fail closed).
 */
import { type DecisionLogTarget, logDecision, startDecision } from '../logging/decision-log.ts';
import type { Gatehouse } from '../policy/decide.ts';
import { type CheckContext, MAX_CHECK_BODY_BYTES } from './check-api.ts';
import { denyResponse, identityHeaders, problemResponse } from './responses.ts';

export interface ForwardAuthOptions {
  readonly context: CheckContext;
  /** Keeps the caller's decision alive past a cancelled request (see docs/workers.md). */
  readonly waitUntil?: (promise: Promise<unknown>) => void;
  /** Where the decision is logged (edge `forward-auth`); none when absent. */
  readonly log?: DecisionLogTarget | undefined;
}

// scheme "://" authority, then the path up to the query or fragment (RFC 3986 §3).
const ABSOLUTE_URI = /^[A-Za-z][A-Za-z0-9+.-]*:\/\/[^/?#]*([^?#]*)/;

/**
 * The path part of `X-Forwarded-Uri` (a path with a query, or an absolute URI), exactly as sent.
 * An absolute URI is cut with a regex, never parsed with `new URL`: the WHATWG parser resolves
 * `..` and `%2e%2e` and turns `\` into `/`, so the core would decide on a path the proxy never
 * forwards. Unparsed, both forms meet the core's own checks (dot segments, backslashes, ... are
 * 400 `malformed_request`).
 */
export function forwardedPath(uri: string): string | null {
  if (uri.length === 0 || uri.length > MAX_CHECK_BODY_BYTES) return null;
  if (uri.startsWith('/')) {
    const cut = uri.search(/[?#]/);
    return cut === -1 ? uri : uri.slice(0, cut);
  }
  const match = ABSOLUTE_URI.exec(uri);
  if (match === null) return null;
  const path = match[1] ?? '';
  return path === '' ? '/' : path;
}

export async function handleForwardAuth(
  gatehouse: Gatehouse,
  request: Request,
  options: ForwardAuthOptions,
): Promise<Response> {
  const method = request.headers.get('x-forwarded-method');
  const uri = request.headers.get('x-forwarded-uri');
  const path = uri === null ? null : forwardedPath(uri);
  if (method === null || !/^[A-Za-z]{1,16}$/.test(method) || path === null) {
    return problemResponse({
      status: 400,
      reason: 'invalid_request',
      detail: 'Send X-Forwarded-Method and X-Forwarded-Uri.',
    });
  }
  const authorization = request.headers.get('authorization');
  const asked = {
    method,
    path,
    authorization,
    ip: options.context.ip,
    country: options.context.country,
  };
  const startedAt = startDecision(options.log);
  const pending = gatehouse.decide(asked);
  options.waitUntil?.(pending);
  const decision = await pending;
  logDecision(options.log, decision, asked, startedAt);
  if (!decision.allow) return denyResponse(decision, authorization);
  return new Response(null, {
    status: 200,
    headers: { ...identityHeaders(decision), 'cache-control': 'no-store' },
  });
}
