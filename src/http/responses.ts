/**
 * Fetch-API helpers every HTTP edge shares (route guard, check API, forward-auth, Hono): problem
 * responses (RFC 9457), the RFC 6750 challenge, identity headers for the origin, and the request
 * context conditions read. Web-standard types only: no Workers imports.
 */
import type { Decision, ReasonCode } from '../types.ts';

/** Headers the guard sets for the origin; any header with this prefix is the guard's alone. */
export const IDENTITY_HEADER_PREFIX = 'x-auth-';
export const IDENTITY_HEADERS = {
  subject: 'X-Auth-Subject',
  tenant: 'X-Auth-Tenant',
  issuer: 'X-Auth-Issuer',
  permission: 'X-Auth-Permission',
  /** Who acts for the subject (delegation): actor subjects, current first, space-separated. */
  actor: 'X-Auth-Actor',
  /**
   * Each actor's identity provider (its token's `iss`), in X-Auth-Actor's order: with several
   * providers a subject alone does not say who acted.
   */
  actorIssuer: 'X-Auth-Actor-Issuer',
} as const;

/**
 * The header carrying a consistency token (issue 14, read your writes): admin changes answer
 * with the revocation feed's epoch in it; the check API accepts it.
 */
export const CONSISTENCY_HEADER = 'Gatehouse-Consistency';

/** The realm in `WWW-Authenticate: Bearer realm="gatehouse"`. */
export const REALM = 'gatehouse';

const TITLES: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  413: 'Content Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/**
 * Fixed sentences per reason family. A problem body never carries the decision's `explain`, the
 * token, claims or error internals: only the stable reason code and one of these.
 */
function detailFor(status: number, reason: string): string {
  if (status === 400) return 'The request path is malformed or ambiguous.';
  if (status === 401) {
    return reason === 'token_missing'
      ? 'A bearer token is required.'
      : 'The bearer token was refused.';
  }
  if (status === 403) return 'The caller is not allowed to do this.';
  if (status === 503) return 'Authorization is temporarily unavailable; the request is denied.';
  return 'The request was refused.';
}

/** Any problem reason: a decision's, or one of the HTTP endpoints' own. */
export type ProblemReason =
  | ReasonCode
  | 'not_found'
  | 'method_not_allowed'
  | 'invalid_request'
  | 'batch_too_large'
  | 'body_too_large'
  | 'unsupported_media_type'
  // Signed events (src/http/events.ts).
  | 'event_too_large'
  | 'events_unavailable';

export interface ProblemInit {
  readonly status: number;
  readonly reason: ProblemReason;
  /** Overrides the fixed sentence; must never contain a token, claims or error internals. */
  readonly detail?: string;
  readonly headers?: Readonly<Record<string, string>>;
}

/** An `application/problem+json` response (RFC 9457) with the reason code as `reason`. */
export function problemResponse(init: ProblemInit): Response {
  const body = {
    type: 'about:blank',
    title: TITLES[init.status] ?? 'Error',
    status: init.status,
    reason: init.reason,
    detail: init.detail ?? detailFor(init.status, init.reason),
  };
  const headers = new Headers({
    'content-type': 'application/problem+json',
    'cache-control': 'no-store',
    ...init.headers,
  });
  return new Response(JSON.stringify(body), { status: init.status, headers });
}

/**
 * The RFC 6750 §3 challenge: `Bearer realm="gatehouse"` when no bearer token was presented,
 * plus `error="invalid_token"` when one was and it was refused.
 */
export function bearerChallenge(tokenPresented: boolean): string {
  return !tokenPresented
    ? `Bearer realm="${REALM}"`
    : `Bearer realm="${REALM}", error="invalid_token"`;
}

/** Whether the Authorization header presents a bearer credential at all (RFC 6750 §3.1). */
export function presentsBearer(authorization: string | null): boolean {
  return authorization !== null && /^bearer /i.test(authorization);
}

/** The deny of a decision as a problem response: 401 with a challenge, 400, 403 or 503. */
export function denyResponse(decision: Decision, authorization: string | null): Response {
  const headers: Record<string, string> = {};
  if (decision.status === 401) {
    headers['www-authenticate'] = bearerChallenge(presentsBearer(authorization));
  }
  if (decision.status === 503) headers['retry-after'] = '5';
  return problemResponse({ status: decision.status, reason: decision.reason, headers });
}

// Visible ASCII except `%`; everything else is percent-encoded as UTF-8.
const SAFE_HEADER_VALUE = /^[\x21-\x24\x26-\x7E]*$/;

/**
 * A header-safe form of a value from a token (subject, tenant, issuer): percent-encoded (UTF-8)
 * outside visible ASCII, and `%` itself, so `decodeURIComponent` always gives the value back and
 * no CR, LF or other control character can reach the origin's header parser.
 */
export function headerValue(value: string): string {
  if (SAFE_HEADER_VALUE.test(value)) return value;
  let out = '';
  for (const char of value) {
    if (SAFE_HEADER_VALUE.test(char)) out += char;
    else {
      const code = char.codePointAt(0) ?? 0;
      // A lone surrogate cannot be UTF-8 encoded; write it as U+FFFD rather than dropping it.
      const bytes = new TextEncoder().encode(code >= 0xd800 && code <= 0xdfff ? '\uFFFD' : char);
      for (const byte of bytes) out += `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
    }
  }
  return out;
}

/** The identity headers for an allowed decision (none for a public route). */
export function identityHeaders(decision: Decision): Record<string, string> {
  const principal = decision.principal;
  if (principal === undefined) return {};
  const out: Record<string, string> = {
    [IDENTITY_HEADERS.subject]: headerValue(principal.subject),
    [IDENTITY_HEADERS.issuer]: headerValue(principal.issuer),
  };
  if (principal.tenant !== undefined) {
    out[IDENTITY_HEADERS.tenant] = headerValue(principal.tenant);
  }
  // Only Gatehouse's own delegation tokens name actors the origin may rely on.
  if (principal.issuerKind === 'self' && principal.actors.length > 0) {
    out[IDENTITY_HEADERS.actor] = principal.actors.map((a) => headerValue(a.subject)).join(' ');
    out[IDENTITY_HEADERS.actorIssuer] = principal.actors
      .map((a) => (a.issuer === undefined ? '-' : headerValue(a.issuer)))
      .join(' ');
  }
  const matched = decision.matched ?? [];
  if (matched.length > 0) {
    // The required permissions that were satisfied, with path parameters filled in.
    out[IDENTITY_HEADERS.permission] = matched.map((m) => headerValue(m.required)).join(' ');
  }
  return out;
}

/** A header name as origins that map `-` and `_` together (CGI, PHP, WSGI, Rack) see it. */
function normalisedName(name: string): string {
  return name.toLowerCase().replace(/_/g, '-');
}

function stripMatching(headers: Headers, doomed: (normalised: string) => boolean): void {
  const names: string[] = [];
  headers.forEach((_value, name) => {
    if (doomed(normalisedName(name))) names.push(name);
  });
  for (const name of names) headers.delete(name);
}

/**
 * Removes every `X-Auth-*` header: only the guard may set them. Names are compared
 * case-insensitively with `_` read as `-`, so `X_Auth_Subject` and `X-Auth_Tenant` go too
 * (CGI, PHP, WSGI and Rack turn both spellings into `HTTP_X_AUTH_SUBJECT`).
 */
export function stripIdentityHeaders(headers: Headers): void {
  stripMatching(headers, (name) => name.startsWith(IDENTITY_HEADER_PREFIX));
}

/**
 * Headers with which many origin frameworks replace the request's method or path (Express
 * method-override, Laravel, Symfony, ASP.NET, IIS URL Rewrite). The guard decides on the request
 * line, so an origin honouring one of these would act on a request that was never authorized.
 */
export const OVERRIDE_HEADERS: readonly string[] = [
  'x-http-method-override',
  'x-http-method',
  'x-method-override',
  'x-original-url',
  'x-rewrite-url',
];

/** Removes the method and URL override headers, compared like {@link stripIdentityHeaders}. */
export function stripOverrideHeaders(headers: Headers): void {
  stripMatching(headers, (name) => OVERRIDE_HEADERS.includes(name));
}

/** What conditions read from a request. `cf` is typed structurally (no Workers types in src). */
export interface ClientContext {
  readonly ip: string | undefined;
  readonly country: string | undefined;
}

/**
 * Client IP from `CF-Connecting-IP` (set by Cloudflare's edge, which overwrites a client's own)
 * and country from `request.cf.country`.
 */
export function clientContext(request: Request): ClientContext {
  const ip = request.headers.get('cf-connecting-ip') ?? undefined;
  const cf = (request as { cf?: { country?: unknown } }).cf;
  const country = typeof cf?.country === 'string' ? cf.country : undefined;
  return { ip, country };
}

/** A JSON response that is never cached. */
export function jsonResponse(body: unknown, status = 200, headers?: Record<string, string>) {
  return new Response(JSON.stringify(body), {
    status,
    headers: { 'content-type': 'application/json', 'cache-control': 'no-store', ...headers },
  });
}
