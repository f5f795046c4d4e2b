/**
 * Signed events over HTTP, for any runtime (issue 13):
 *
 * - `POST <prefix>/v1/events` with the caller's bearer token and `{type, data, permission}` (or
 *   `method` + `path` through the policy's routes; optional `audience`, `ttlSeconds`): the caller
 *   must hold the permission now, else the deny (401/403/503) and nothing is signed; otherwise
 *   `{ event, id, expiresAt }`.
 * - `POST <prefix>/v1/events/verify` with `{ event }`: a check-API-shaped decision (`allow`,
 *   `status`, `reason`, `subject`, `tenant`, and `event` with its data when allowed; no
 *   `explain`, so no grant chain for whoever holds an event), answered 200
 *   like the check API; the decision's own `status` says 401 for a forged, altered, expired or
 *   foreign event, 403 for a revoked permission, 503 for an unavailable store. No bearer token:
 *   the event is the credential, and it already carries its data in the clear.
 *
 * The Worker serves the Fetch forms; the Lambda calls {@link answerEventSign} and
 * {@link answerEventVerify} with the event's method, headers and body.
 */
import { EventError } from '../errors.ts';
import {
  type EventAudit,
  type EventsOptions,
  eventsFor,
  parseEventRequest,
} from '../events/events.ts';
// Not ../policy/index.ts: it re-exports the YAML parser, which a Worker must not bundle.
import type { Gatehouse } from '../policy/decide.ts';
import { hasDuplicateMemberName } from '../token/json.ts';
import type { Decision } from '../types.ts';
import { readCappedText } from './body.ts';
import { denyResponse, problemResponse } from './responses.ts';

/** Request bodies larger than this are refused (413) before parsing; an event is at most 256 KiB. */
export const MAX_EVENT_BODY_BYTES = 512 * 1024;

/** A transport-free answer the Worker and the Lambda each frame (as the token endpoint's). */
export interface EventAnswer {
  readonly status: number;
  readonly headers: Readonly<Record<string, string>>;
  readonly body: string;
}

export interface EventHttpInput {
  readonly method: string;
  readonly contentType: string | null;
  /** The body as UTF-8 text; null when it was larger than {@link MAX_EVENT_BODY_BYTES} or not UTF-8. */
  readonly body: string | null;
  readonly authorization?: string | null | undefined;
  readonly ip?: string | undefined;
  readonly country?: string | undefined;
}

export interface EventHttpOptions {
  /** Clock, milliseconds; default Date.now (used the first time a Gatehouse's events are built). */
  readonly now?: (() => number) | undefined;
  /** Receives the audit line of each signed event (used the first time, as `now`). */
  readonly audit?: ((entry: EventAudit) => void) | undefined;
}

function eventsOptions(options: EventHttpOptions): EventsOptions {
  return {
    ...(options.now !== undefined && { now: options.now }),
    ...(options.audit !== undefined && { audit: options.audit }),
  };
}

async function fromResponse(response: Response): Promise<EventAnswer> {
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  return { status: response.status, headers, body: await response.text() };
}

const json = (status: number, value: unknown): EventAnswer => ({
  status,
  headers: { 'content-type': 'application/json', 'cache-control': 'no-store' },
  body: JSON.stringify(value),
});

const problem = (init: Parameters<typeof problemResponse>[0]) =>
  fromResponse(problemResponse(init));

/** The body as JSON, or the problem answer that refuses it (the check API's rules). */
async function readBody(input: EventHttpInput): Promise<unknown | EventAnswer> {
  if (input.method.toUpperCase() !== 'POST') {
    return problem({
      status: 405,
      reason: 'method_not_allowed',
      detail: 'Use POST.',
      headers: { allow: 'POST' },
    });
  }
  if (!/^application\/json\b/i.test(input.contentType ?? '')) {
    return problem({
      status: 415,
      reason: 'unsupported_media_type',
      detail: 'Send the body as application/json.',
    });
  }
  if (input.body === null)
    return problem({ status: 413, reason: 'body_too_large', detail: 'The body is too large.' });
  let value: unknown;
  try {
    value = JSON.parse(input.body) as unknown;
  } catch {
    return problem({
      status: 400,
      reason: 'invalid_request',
      detail: 'The body is not valid JSON.',
    });
  }
  if (hasDuplicateMemberName(input.body)) {
    return problem({
      status: 400,
      reason: 'invalid_request',
      detail: 'The body repeats a member name.',
    });
  }
  return value;
}

function isAnswer(value: unknown): value is EventAnswer {
  return (
    typeof value === 'object' &&
    value !== null &&
    'status' in value &&
    'headers' in value &&
    'body' in value &&
    Object.keys(value).length === 3
  );
}

function eventProblem(error: EventError, gatehouse: Gatehouse): Promise<EventAnswer> {
  if (error.code === 'events_unavailable') {
    const configured = gatehouse.policy.events !== null;
    return problem({
      status: configured ? 503 : 404,
      reason: configured ? 'events_unavailable' : 'not_found',
      // Names the secret's variable (never its value), as the token endpoint does.
      detail: configured ? error.message : 'Events are not configured.',
      ...(configured && { headers: { 'retry-after': '5' } }),
    });
  }
  if (error.code === 'event_too_large') {
    return problem({ status: 413, reason: 'event_too_large', detail: error.message });
  }
  // The field and the expectation are ours, never the caller's values.
  return problem({ status: 400, reason: 'invalid_request', detail: error.message });
}

/** POST <prefix>/v1/events, transport-free. */
export async function answerEventSign(
  gatehouse: Gatehouse,
  input: EventHttpInput,
  options: EventHttpOptions = {},
): Promise<EventAnswer> {
  const body = await readBody(input);
  if (isAnswer(body)) return body;
  const events = eventsFor(gatehouse, eventsOptions(options));
  try {
    const outcome = await events.signRequest(
      { authorization: input.authorization, ip: input.ip, country: input.country },
      parseEventRequest(body),
    );
    if (!outcome.ok) {
      return fromResponse(denyResponse(outcome.decision as Decision, input.authorization ?? null));
    }
    return json(200, { event: outcome.event, id: outcome.id, expiresAt: outcome.expiresAt });
  } catch (error) {
    if (error instanceof EventError) return eventProblem(error, gatehouse);
    return problem({ status: 503, reason: 'internal_error', headers: { 'retry-after': '5' } });
  }
}

/** POST <prefix>/v1/events/verify, transport-free. */
export async function answerEventVerify(
  gatehouse: Gatehouse,
  input: EventHttpInput,
  options: EventHttpOptions = {},
): Promise<EventAnswer> {
  const body = await readBody(input);
  if (isAnswer(body)) return body;
  if (
    typeof body !== 'object' ||
    body === null ||
    Array.isArray(body) ||
    Object.keys(body).length !== 1 ||
    typeof (body as { event?: unknown }).event !== 'string'
  ) {
    return problem({
      status: 400,
      reason: 'invalid_request',
      detail: '(body): expected {"event": "<compact JWS>"}',
    });
  }
  if (gatehouse.policy.events === null) {
    return problem({ status: 404, reason: 'not_found', detail: 'Events are not configured.' });
  }
  const events = eventsFor(gatehouse, eventsOptions(options));
  const d = await events.verify((body as { event: string }).event);
  // Anyone holding an event may ask: the answer is whether it runs, not the subject's grant
  // structure (explain, matched, required would show roles and denies, review R11). The library
  // and the RPC binding, called by the deployment's own code, keep the full decision.
  return json(200, {
    allow: d.allow,
    status: d.status,
    reason: d.reason,
    ...(d.subject !== undefined && { subject: d.subject }),
    ...(d.tenant !== undefined && { tenant: d.tenant }),
    ...(d.event !== undefined && { event: d.event }),
  });
}

async function inputOf(
  request: Request,
  context: { ip?: string | undefined; country?: string | undefined },
) {
  let body: string | null = null;
  if (request.method.toUpperCase() === 'POST') {
    try {
      body = await readCappedText(request.body, MAX_EVENT_BODY_BYTES);
    } catch {
      body = null;
    }
  }
  return {
    method: request.method,
    contentType: request.headers.get('content-type'),
    body,
    authorization: request.headers.get('authorization'),
    ip: context.ip,
    country: context.country,
  } satisfies EventHttpInput;
}

function toResponse(answer: EventAnswer): Response {
  return new Response(answer.body === '' ? null : answer.body, {
    status: answer.status,
    headers: answer.headers,
  });
}

/** The Fetch form of {@link answerEventSign} and {@link answerEventVerify}. */
export async function handleEventRequest(
  gatehouse: Gatehouse,
  request: Request,
  options: EventHttpOptions & {
    readonly verify: boolean;
    readonly context: { ip?: string | undefined; country?: string | undefined };
  },
): Promise<Response> {
  const input = await inputOf(request, options.context);
  const answer = options.verify
    ? await answerEventVerify(gatehouse, input, options)
    : await answerEventSign(gatehouse, input, options);
  return toResponse(answer);
}
