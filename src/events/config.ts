/**
 * The policy's `events` section, compiled once. Signed events reuse Gatehouse's issuer name and
 * keys from the `delegation` section (one issuer, one JWKS) with their own `typ`
 * (`gatehouse-event+jwt`) and their own audiences, so no event can pass for a bearer token and
 * no bearer token for an event. Every mistake is a ConfigError naming the field.
 */
import type { DelegationConfig } from '../delegation/config.ts';
import {
  ACTOR_IATS_CLAIM,
  EVENT_TYPE,
  PARENTS_CLAIM,
  SUBJECT_IAT_CLAIM,
} from '../delegation/constants.ts';
import { type IssuerKeySet, keyAlgorithms, publicJwks } from '../delegation/keys.ts';
import { ConfigError, integerOption } from '../errors.ts';
import type { IssuerOptions } from '../token/options.ts';

/** The `events` section as written. */
export interface EventsDocument {
  /** Accepted `aud` values; the first is the default (default [`<issuer>/events`]). */
  readonly audiences?: readonly string[] | undefined;
  /** CloudEvents `source` of every event (default: the issuer). */
  readonly source?: string | undefined;
  /** Lifetime when a request names none, seconds (default 3600, at most maxTtlSeconds). */
  readonly defaultTtlSeconds?: number | undefined;
  /** Longest lifetime, seconds (default 86400, 1..1209600): a queue's retention at most. */
  readonly maxTtlSeconds?: number | undefined;
  /** Largest signed event, bytes of compact JWS (default 65536, 1024..262144). */
  readonly maxBytes?: number | undefined;
}

export interface EventsConfig {
  readonly issuer: string;
  readonly audiences: readonly string[];
  readonly source: string;
  readonly defaultTtlSeconds: number;
  readonly maxTtlSeconds: number;
  readonly maxBytes: number;
  /** Name of the key secret, for the 503 that says it is unset. */
  readonly keysEnv: string;
  /** null when the key secret is not set: no event is signed or verified (closed). */
  readonly keys: IssuerKeySet | null;
}

export const DEFAULT_EVENT_TTL_SECONDS = 3600;
export const DEFAULT_EVENT_MAX_TTL_SECONDS = 86_400;
/** SQS's longest retention; Cloudflare Queues keep messages at most 14 days too. */
export const MAX_EVENT_TTL_SECONDS = 1_209_600;
/** Well under a Workers Queues message (128 KB) and an SQS message (256 KiB). */
export const DEFAULT_EVENT_MAX_BYTES = 65_536;

/** Compiles the section against the delegation section it signs with (required). */
export function compileEvents(
  doc: EventsDocument,
  field: string,
  delegation: DelegationConfig | null,
): EventsConfig {
  if (delegation === null) {
    throw new ConfigError(
      field,
      "needs a delegation section: events are signed with Gatehouse's issuer and keys",
    );
  }
  const audiences = doc.audiences ?? [`${delegation.issuer}/events`];
  if (audiences.length === 0)
    throw new ConfigError(`${field}.audiences`, 'expected at least one audience');
  audiences.forEach((aud, i) => {
    // An event audience that a delegation token also carries would make the two kinds share an
    // audience; typ already separates them, this keeps a second, independent wall.
    if (delegation.audiences.includes(aud)) {
      throw new ConfigError(
        `${field}.audiences[${i}]`,
        'must differ from every delegation audience',
      );
    }
  });
  const maxTtlSeconds = integerOption(
    doc.maxTtlSeconds,
    `${field}.maxTtlSeconds`,
    1,
    MAX_EVENT_TTL_SECONDS,
    DEFAULT_EVENT_MAX_TTL_SECONDS,
  );
  const defaultTtlSeconds = integerOption(
    doc.defaultTtlSeconds,
    `${field}.defaultTtlSeconds`,
    1,
    maxTtlSeconds,
    Math.min(DEFAULT_EVENT_TTL_SECONDS, maxTtlSeconds),
  );
  return {
    issuer: delegation.issuer,
    audiences: Object.freeze([...audiences]),
    source: doc.source ?? delegation.issuer,
    defaultTtlSeconds,
    maxTtlSeconds,
    maxBytes: integerOption(
      doc.maxBytes,
      `${field}.maxBytes`,
      1024,
      262_144,
      DEFAULT_EVENT_MAX_BYTES,
    ),
    keysEnv: delegation.keysEnv,
    keys: delegation.keys,
  };
}

/**
 * The verifier entry for signed events: the keys inline (never fetched), only the event `typ`,
 * required, only the event audiences, and a maximum age of the longest lifetime, so an event
 * signed with a wrong `exp` still cannot outlive the bound. Null without keys.
 */
export function eventIssuerOptions(config: EventsConfig): IssuerOptions | null {
  if (config.keys === null) return null;
  return {
    issuer: config.issuer,
    kind: 'self',
    keys: { jwks: publicJwks(config.keys) as unknown as { keys: [] } },
    audiences: [...config.audiences],
    algorithms: keyAlgorithms(config.keys),
    types: [EVENT_TYPE],
    requireType: true,
    tenant: { claim: 'tenant', optional: true },
    keepClaims: [
      'specversion',
      'id',
      'source',
      'type',
      'time',
      'datacontenttype',
      'data',
      'permissions',
      'mode',
      'route',
      'ctx',
      'delegated',
      'scope',
      'grant',
      SUBJECT_IAT_CLAIM,
      ACTOR_IATS_CLAIM,
      PARENTS_CLAIM,
    ],
    maxAgeSeconds: config.maxTtlSeconds,
  };
}
