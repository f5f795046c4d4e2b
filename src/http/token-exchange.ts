/**
 * Gatehouse's token endpoint (RFC 8693 token exchange) and its JWKS document, for any runtime:
 * `POST <prefix>/v1/token` (form-encoded, RFC 6749 §5.2 JSON errors) and
 * `GET <prefix>/jwks.json`. The Worker serves them through the Fetch wrappers; the Lambda through
 * {@link answerTokenRequest} and {@link answerJwks} with the event's method, headers and body.
 *
 * What the new token may say is decided in src/delegation/exchange.ts; this file parses, verifies
 * both tokens with the Gatehouse's own verifier, signs and writes the audit line.
 */
import {
  createSigner,
  type DelegationConfig,
  type DelegationSigner,
  describeChain,
  isWellFormed,
  planExchange,
  publicJwks,
  STANDING_CLAIM,
  TOKEN_EXCHANGE_GRANT,
  TOKEN_TYPE_ACCESS_TOKEN,
  TOKEN_TYPE_JWT,
  TOKEN_TYPE_STANDING,
} from '../delegation/index.ts';
import { ExchangeError, TokenError } from '../errors.ts';
// Not ../policy/index.ts: it re-exports the YAML parser, which a Worker must not bundle.
import type { Gatehouse } from '../policy/decide.ts';
import { delegatorLacks, standingFor } from '../policy/delegator.ts';
import { DEFAULT_MAX_TOKEN_BYTES } from '../token/precheck.ts';
import type { Principal } from '../types.ts';
import { readCappedText } from './body.ts';

/** Form bodies larger than this are refused before parsing (three tokens fit comfortably). */
export const MAX_TOKEN_BODY_BYTES = 64 * 1024;

/** One audit line per exchange, issued or refused; never a token. */
export interface ExchangeAudit {
  readonly type: 'gatehouse.delegation_issued' | 'gatehouse.delegation_refused';
  readonly time: string;
  readonly error?: string;
  readonly delegator?: string;
  readonly tenant?: string;
  /** Current actor first, `a > b`. */
  readonly actors?: string;
  readonly scope?: string;
  readonly tokenId?: string;
  readonly expiresAt?: number;
}

export interface TokenEndpointOptions {
  /** Clock, milliseconds; default Date.now. */
  readonly now?: () => number;
  /** Receives the audit line; default one JSON line on console.log. */
  readonly audit?: (entry: ExchangeAudit) => void;
}

/** A transport-free answer the Worker and the Lambda each frame. */
export interface EndpointAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

const NO_STORE = { 'cache-control': 'no-store', pragma: 'no-cache' } as const;
const JSON_TYPE = 'application/json;charset=UTF-8';
const TOKEN_TYPES = new Set([TOKEN_TYPE_JWT, TOKEN_TYPE_ACCESS_TOKEN]);
const PARAMETERS = new Set([
  'grant_type',
  'subject_token',
  'subject_token_type',
  'actor_token',
  'actor_token_type',
  'scope',
  'audience',
  'resource',
  'requested_token_type',
]);

const signers = new WeakMap<DelegationConfig, DelegationSigner>();

function signerFor(config: DelegationConfig): DelegationSigner {
  let signer = signers.get(config);
  if (signer === undefined) {
    if (config.keys === null) throw new TypeError('delegation keys were not loaded');
    signer = createSigner(config.keys);
    signers.set(config, signer);
  }
  return signer;
}

function oauthError(code: string, description: string, status = 400): EndpointAnswer {
  return {
    status,
    headers: { 'content-type': JSON_TYPE, ...NO_STORE },
    body: JSON.stringify({ error: code, error_description: description }),
  };
}

function defaultAudit(entry: ExchangeAudit): void {
  console.log(JSON.stringify({ level: 'info', ...entry }));
}

/**
 * RFC 6749 §3.2: parameters sent twice, or without a value, make the request invalid; except
 * `audience`, which RFC 8693 §2.1 lets a client send several times (collected in `audiences`).
 */
function readForm(
  text: string,
): { form: Map<string, string>; audiences: string[] } | ExchangeError {
  const form = new URLSearchParams(text);
  const out = new Map<string, string>();
  const audiences: string[] = [];
  for (const [name, value] of form) {
    if (name === 'audience') {
      if (value !== '') audiences.push(value);
      continue;
    }
    if (out.has(name)) return new ExchangeError('invalid_request', `${name} is repeated`);
    // Unknown names are ignored (RFC 6749 §3.2), but only known ones are kept.
    if (PARAMETERS.has(name) && value !== '') out.set(name, value);
  }
  return { form: out, audiences };
}

async function verifyParty(gatehouse: Gatehouse, token: string, which: string): Promise<Principal> {
  let principal: Principal;
  try {
    principal = (await gatehouse.verifier.verify(token)).principal;
  } catch (error) {
    if (error instanceof TokenError && error.code === 'keys_unavailable') throw error;
    // RFC 8693 §2.2.2: an invalid subject or actor token is `invalid_request`.
    throw new ExchangeError('invalid_request', `the ${which} token was refused`, { cause: error });
  }
  // A signed-out session or a revoked token id is refused here exactly as at the routes (the
  // same admit()): otherwise it would be laundered into a fresh token with a new iat and jti.
  const refused = await gatehouse.admit(principal, { session: true });
  if (refused !== null) {
    if (refused.status === 503) throw new Error(refused.reason);
    throw new ExchangeError(
      'invalid_request',
      `the ${which} token was refused (${refused.reason})`,
    );
  }
  return principal;
}

/**
 * The delegator named by a standing grant reference (`subject_token` is her subject; her tenant
 * is the actor's, as tenants never mix). Nothing in it is trusted beyond naming whose record to
 * read: the grant itself must be in that record.
 */
function standingDelegator(reference: string, actor: Principal, nowMs: number): Principal {
  // A subject as an identity provider issues it: bounded, no control characters.
  if (
    reference.length > 256 ||
    /[\u0000-\u001f\u007f]/.test(reference) ||
    !isWellFormed(reference)
  ) {
    throw new ExchangeError('invalid_request', 'subject_token is not a subject');
  }
  return {
    issuer: 'urn:gatehouse:standing',
    issuerKind: 'external',
    subject: reference,
    ...(actor.tenant !== undefined && { tenant: actor.tenant }),
    scopes: [],
    claims: {},
    actors: [],
    // No token: the standing grant's own expiry bounds the new token (planExchange).
    expiresAt: Math.floor(nowMs / 1000) + 86_400,
  };
}

/** POST <prefix>/v1/token, transport-free. */
export async function answerTokenRequest(
  gatehouse: Gatehouse,
  input: {
    readonly method: string;
    readonly contentType: string | null;
    readonly body: string | null;
  },
  options: TokenEndpointOptions = {},
): Promise<EndpointAnswer> {
  const now = options.now ?? Date.now;
  const audit = options.audit ?? defaultAudit;
  const config = gatehouse.policy.delegation;
  if (config === null) return oauthError('invalid_request', 'delegation is not configured', 404);
  if (config.keys === null) {
    return oauthError('temporarily_unavailable', `${config.keysEnv} is not set`, 503);
  }
  if (input.method.toUpperCase() !== 'POST') {
    return {
      ...oauthError('invalid_request', 'use POST'),
      status: 405,
      headers: { allow: 'POST', 'content-type': JSON_TYPE, ...NO_STORE },
    };
  }
  const refuse = (error: ExchangeError, extra: Partial<ExchangeAudit> = {}) => {
    audit({
      type: 'gatehouse.delegation_refused',
      time: new Date(now()).toISOString(),
      error: error.code,
      ...extra,
    });
    return oauthError(error.code, error.message);
  };
  if (!/^application\/x-www-form-urlencoded\s*(;|$)/i.test(input.contentType ?? '')) {
    return refuse(
      new ExchangeError('invalid_request', 'expected application/x-www-form-urlencoded'),
    );
  }
  if (input.body === null) {
    return refuse(new ExchangeError('invalid_request', 'the request body is too large'));
  }
  const read = readForm(input.body);
  if (read instanceof ExchangeError) return refuse(read);
  const { form, audiences } = read;
  if (form.get('grant_type') !== TOKEN_EXCHANGE_GRANT) {
    return refuse(new ExchangeError('unsupported_grant_type', `expected ${TOKEN_EXCHANGE_GRANT}`));
  }
  const subjectToken = form.get('subject_token');
  const actorToken = form.get('actor_token');
  const standing = form.get('subject_token_type') === TOKEN_TYPE_STANDING;
  for (const [name, value] of [
    ['subject_token', subjectToken],
    ['actor_token', actorToken],
  ] as const) {
    if (value === undefined)
      return refuse(new ExchangeError('invalid_request', `${name} is required`));
    const type = form.get(`${name}_type`);
    if (name === 'subject_token' && standing) continue;
    if (type === undefined || !TOKEN_TYPES.has(type)) {
      return refuse(
        new ExchangeError(
          'invalid_request',
          `${name}_type must be ${TOKEN_TYPE_JWT} or ${TOKEN_TYPE_ACCESS_TOKEN}`,
        ),
      );
    }
  }
  const requested = form.get('requested_token_type');
  if (requested !== undefined && !TOKEN_TYPES.has(requested)) {
    return refuse(new ExchangeError('invalid_request', 'requested_token_type is not supported'));
  }
  if (form.has('resource')) {
    return refuse(new ExchangeError('invalid_target', 'resource is not supported; use audience'));
  }
  try {
    const actor = await verifyParty(gatehouse, actorToken!, 'actor');
    const subject = standing
      ? standingDelegator(subjectToken!, actor, now())
      : await verifyParty(gatehouse, subjectToken!, 'subject');
    const plan = await planExchange({
      ...((standing ||
        (subject.issuerKind === 'self' && subject.claims.grant === STANDING_CLAIM)) && {
        // The innermost actor's standing grants, read from the delegator's record now.
        standing: await standingFor(
          gatehouse,
          subject,
          standing
            ? { subject: actor.subject, issuer: actor.issuer }
            : (subject.actors.at(-1) ?? { subject: '' }),
        ),
      }),
      config,
      subject,
      actor,
      scope: form.get('scope'),
      audience: audiences,
      now: now(),
      delegatorLacks: (delegator, scope) => delegatorLacks(gatehouse, delegator, scope),
    });
    const token = await signerFor(config).sign(plan.claims);
    // A token no edge would accept (the verifier's maxTokenBytes) is refused, not handed out.
    const maxBytes = gatehouse.policy.verifier.maxTokenBytes ?? DEFAULT_MAX_TOKEN_BYTES;
    if (token.length > maxBytes) {
      throw new ExchangeError(
        'invalid_request',
        `the token would be longer than the ${maxBytes} bytes the edges accept`,
      );
    }
    audit({
      type: 'gatehouse.delegation_issued',
      time: new Date(now()).toISOString(),
      delegator: plan.claims.sub,
      ...(plan.claims.tenant !== undefined && { tenant: plan.claims.tenant }),
      actors: describeChain(plan.actors),
      scope: plan.claims.scope,
      tokenId: plan.claims.jti,
      expiresAt: plan.claims.exp,
    });
    return {
      status: 200,
      headers: { 'content-type': JSON_TYPE, ...NO_STORE },
      body: JSON.stringify({
        access_token: token,
        issued_token_type: TOKEN_TYPE_ACCESS_TOKEN,
        token_type: 'Bearer',
        expires_in: plan.expiresIn,
        scope: plan.claims.scope,
      }),
    };
  } catch (error) {
    if (error instanceof ExchangeError) return refuse(error);
    audit({
      type: 'gatehouse.delegation_refused',
      time: new Date(now()).toISOString(),
      error: 'temporarily_unavailable',
    });
    // Keys or store unavailable, or a fault: fail closed without details (RFC 6749 §5.2 has no
    // code for it; temporarily_unavailable is the authorization endpoint's, widely understood).
    return {
      ...oauthError('temporarily_unavailable', 'try again later', 503),
      headers: { 'content-type': JSON_TYPE, ...NO_STORE, 'retry-after': '5' },
    };
  }
}

/** GET <prefix>/jwks.json, transport-free: the public keys, cacheable for five minutes. */
export function answerJwks(gatehouse: Gatehouse, method: string): EndpointAnswer {
  const config = gatehouse.policy.delegation;
  if (config === null || config.keys === null) {
    return oauthError('invalid_request', 'delegation is not configured', 404);
  }
  if (method !== 'GET' && method !== 'HEAD') {
    return { status: 405, headers: { allow: 'GET, HEAD' }, body: '' };
  }
  return {
    status: 200,
    headers: { 'content-type': 'application/jwk-set+json', 'cache-control': 'public, max-age=300' },
    body: method === 'HEAD' ? '' : JSON.stringify(publicJwks(config.keys)),
  };
}

function toResponse(answer: EndpointAnswer): Response {
  return new Response(answer.status === 405 && answer.body === '' ? null : answer.body, {
    status: answer.status,
    headers: answer.headers,
  });
}

/** The Fetch form of {@link answerTokenRequest}. */
export async function handleTokenRequest(
  gatehouse: Gatehouse,
  request: Request,
  options: TokenEndpointOptions = {},
): Promise<Response> {
  let body: string | null = null;
  if (request.method.toUpperCase() === 'POST') {
    try {
      body = await readCappedText(request.body, MAX_TOKEN_BODY_BYTES);
    } catch {
      return toResponse(oauthError('invalid_request', 'the body is not UTF-8'));
    }
  }
  return toResponse(
    await answerTokenRequest(
      gatehouse,
      {
        method: request.method,
        contentType: request.headers.get('content-type'),
        body: body ?? (request.method.toUpperCase() === 'POST' ? null : ''),
      },
      options,
    ),
  );
}

/** The Fetch form of {@link answerJwks}. */
export function handleJwksRequest(gatehouse: Gatehouse, request: Request): Response {
  return toResponse(answerJwks(gatehouse, request.method.toUpperCase()));
}
