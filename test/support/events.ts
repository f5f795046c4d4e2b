/**
 * Signed-event test support: the delegation test policy with an `events` section and a route
 * that starts an operation, raw event claims for crafted events, and the queue scenario's cast.
 * Web Crypto only, so Node and workerd suites share it.
 */
import { EVENT_TYPE } from '../../src/delegation/index.ts';
import type { PolicyDocument } from '../../src/policy/schema.ts';
import { delegationPolicy, SELF_ISSUER, signRaw, type TestKeys } from './delegation.ts';
import type { TestIssuer } from './issuer.ts';

export const EVENT_AUDIENCE = `${SELF_ISSUER}/events`;

/** The delegation test policy plus signed events and `POST /reports` (write:reports). */
export function eventsPolicy(
  idp: TestIssuer,
  events: NonNullable<PolicyDocument['events']> = {},
  extra: Partial<PolicyDocument> = {},
): PolicyDocument {
  const doc = delegationPolicy(idp, extra);
  return {
    ...doc,
    routes: [
      ...doc.routes,
      { method: 'POST', path: '/reports/:id', require: ['write:reports:{id}'] },
      { method: 'POST', path: '/exports', anyOf: ['write:exports', 'admin:exports'] },
    ],
    events,
  };
}

/** Claims of an event as Gatehouse signs them, for crafting variants. */
export function eventClaims(
  nowMs: number,
  extra: Record<string, unknown> = {},
): Record<string, unknown> {
  const iat = Math.floor(nowMs / 1000);
  return {
    iss: SELF_ISSUER,
    aud: EVENT_AUDIENCE,
    iat,
    nbf: iat,
    exp: iat + 600,
    jti: 'evt-1',
    sub: 'alice',
    specversion: '1.0',
    id: 'evt-1',
    source: SELF_ISSUER,
    type: 'com.example.report.requested',
    time: new Date(nowMs).toISOString(),
    datacontenttype: 'application/json',
    data: { report: 42 },
    permissions: ['write:reports'],
    mode: 'all',
    ...extra,
  };
}

export function eventHeader(keys: TestKeys, extra: Record<string, unknown> = {}) {
  return { alg: keys.set.current.alg, kid: keys.set.current.kid, typ: EVENT_TYPE, ...extra };
}

/** Signs crafted claims with Gatehouse's current key and the event typ (or `header`'s). */
export function signEventRaw(
  keys: TestKeys,
  claims: Record<string, unknown>,
  header: Record<string, unknown> = {},
): Promise<string> {
  return signRaw(keys, eventHeader(keys, header), claims);
}

/** Replaces the payload of a compact JWS, keeping header and signature (an altered event). */
export function alterEvent(event: string, change: (claims: Record<string, unknown>) => void) {
  const [h, p, s] = event.split('.') as [string, string, string];
  const claims = JSON.parse(
    new TextDecoder().decode(
      Uint8Array.from(atob(p.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0)),
    ),
  ) as Record<string, unknown>;
  change(claims);
  const bytes = new TextEncoder().encode(JSON.stringify(claims));
  let binary = '';
  for (const b of bytes) binary += String.fromCharCode(b);
  const encoded = btoa(binary).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  return `${h}.${encoded}.${s}`;
}
