/**
 * Forward authentication for reverse proxies (nginx `auth_request`, Traefik ForwardAuth, Caddy
 * `forward_auth`): the proxy asks with the original method and URI in `X-Forwarded-Method` /
 * `X-Forwarded-Uri` and the client's Authorization header; the answer is 200 with identity
 * headers, 401 with a challenge, 403, or 400 / 503 (which proxies treat as errors: fail closed).
 */
import type { Gatehouse } from '../policy/decide.ts';
import { type CheckContext, MAX_CHECK_BODY_BYTES } from './check-api.ts';
import { denyResponse, identityHeaders, problemResponse } from './http.ts';

export interface ForwardAuthOptions {
  readonly context: CheckContext;
  /** Keeps the caller's decision alive past a cancelled request (see docs/workers.md). */
  readonly waitUntil?: (promise: Promise<unknown>) => void;
}

/** The path part of `X-Forwarded-Uri` (which may be a path with a query, or an absolute URL). */
function forwardedPath(uri: string): string | null {
  if (uri.length === 0 || uri.length > MAX_CHECK_BODY_BYTES) return null;
  if (uri.startsWith('/')) {
    const cut = uri.search(/[?#]/);
    return cut === -1 ? uri : uri.slice(0, cut);
  }
  try {
    return new URL(uri).pathname;
  } catch {
    return null;
  }
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
  const pending = gatehouse.decide({
    method,
    path,
    authorization,
    ip: options.context.ip,
    country: options.context.country,
  });
  options.waitUntil?.(pending);
  const decision = await pending;
  if (!decision.allow) return denyResponse(decision, authorization);
  return new Response(null, {
    status: 200,
    headers: { ...identityHeaders(decision), 'cache-control': 'no-store' },
  });
}
