/**
 * Gatehouse errors. Two families that must never be confused:
 *
 * - {@link ConfigError}: a mistake in configuration, thrown once when an object is built
 *   (at start-up), naming the field and the expected form.
 * - {@link TokenError} / {@link StoreError}: a per-request failure. These become a
 *   deny Decision (401 / 503); they never look like a bad configuration.
 *
 * Callers switch on `code`; tests assert the class or the code, never the message.
 * Messages never contain a token, a key, a secret or a claims set.
 */

export abstract class GatehouseError extends Error {
  abstract readonly code: string;
}

/** A configuration value is missing or malformed. `field` is a dotted path such as `issuers[0].jwksUri`. */
export class ConfigError extends GatehouseError {
  override readonly name = 'ConfigError';
  readonly code = 'invalid_config' as const;
  readonly field: string;
  /** What was expected, without the field: "expected a permission like read:posts". */
  readonly expected: string;
  constructor(field: string, expected: string, options?: { cause?: unknown }) {
    super(`${field}: ${expected}`, options);
    this.field = field;
    this.expected = expected;
  }
}

/**
 * A numeric option: `fallback` when absent, otherwise a finite number in [min, max] (an integer
 * when asked), or a ConfigError naming `field`. Shared so every option reports the same way.
 */
export function numberOption(
  value: unknown,
  field: string,
  min: number,
  max: number,
  fallback: number,
  integer = false,
): number {
  if (value === undefined) return fallback;
  if (
    typeof value !== 'number' ||
    !Number.isFinite(value) ||
    value < min ||
    value > max ||
    (integer && !Number.isInteger(value))
  ) {
    throw new ConfigError(
      field,
      `expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`,
    );
  }
  return value;
}

/** {@link numberOption} for whole numbers (seconds, counts, depths). */
export function integerOption(
  value: unknown,
  field: string,
  min: number,
  max: number,
  fallback: number,
): number {
  return numberOption(value, field, min, max, fallback, true);
}

/** Stable reasons a bearer token is refused. Each maps to a 401 except `keys_unavailable` (503). */
export type TokenErrorCode =
  | 'token_missing'
  | 'token_malformed'
  | 'token_too_large'
  | 'token_unsupported'
  | 'token_unknown_issuer'
  | 'token_unknown_key'
  | 'token_algorithm_mismatch'
  | 'token_invalid_signature'
  | 'token_invalid_type'
  | 'token_invalid_audience'
  | 'token_expired'
  | 'token_not_yet_valid'
  | 'token_too_old'
  | 'token_invalid_claims'
  | 'keys_unavailable';

export class TokenError extends GatehouseError {
  override readonly name = 'TokenError';
  readonly code: TokenErrorCode;
  constructor(code: TokenErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * `store_unavailable`: the store did not answer; `store_invalid_record`: a record it returned is
 * malformed; `store_record_too_large`: a record holds more entries than `maxRecordEntries`.
 */
export type StoreErrorCode =
  | 'store_unavailable'
  | 'store_invalid_record'
  | 'store_record_too_large';

/** The permission store could not answer. Always a 503 / authorizer failure, never an allow. */
export class StoreError extends GatehouseError {
  override readonly name = 'StoreError';
  readonly code: StoreErrorCode;
  /**
   * The encoded store key of the record at fault (`user/-/s:alice`), when one record is to blame;
   * the core logs it so an operator can find the record. Never the record's contents.
   */
  readonly key: string | undefined;
  constructor(code: StoreErrorCode, message: string, options?: { cause?: unknown; key?: string }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.key = options?.key;
  }
}

export type AdminErrorCode = 'invalid_request' | 'not_found' | 'conflict' | 'record_too_large';

/**
 * A management request (CLI command, admin API call) that cannot be carried out as asked: bad
 * input (`invalid_request`, 400, exit 2), a missing target (`not_found`, 404), one that would
 * break other data (`conflict`, 409) or one that would grow a record past `maxRecordEntries`
 * (`record_too_large`, 409, exit 2). Nothing has been written when it is thrown. `field` names
 * the input at fault (`permission`, `when.ip[0]`, `users.alice.grants[2]`).
 */
export class AdminError extends GatehouseError {
  override readonly name = 'AdminError';
  readonly code: AdminErrorCode;
  readonly field: string | undefined;
  constructor(
    code: AdminErrorCode,
    message: string,
    options?: { field?: string; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.field = options?.field;
  }
}

/** RFC 6749 §5.2 / RFC 8693 §2.2.2 error codes of the token endpoint. */
export type ExchangeErrorCode =
  | 'invalid_request'
  | 'invalid_grant'
  | 'invalid_scope'
  | 'invalid_target'
  | 'unauthorized_client'
  | 'unsupported_grant_type';

/**
 * A token exchange refused. `code` is the OAuth error sent to the client (400, or 401 for
 * `unauthorized_client` per RFC 6749 §5.2 only when client authentication failed; here 400);
 * the message is a fixed sentence, never a token or claim.
 */
export class ExchangeError extends GatehouseError {
  override readonly name = 'ExchangeError';
  readonly code: ExchangeErrorCode;
  constructor(code: ExchangeErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/**
 * `event_invalid_request` (400): a signing request names a bad type, data, audience or ttl;
 * `event_too_large` (413): the signed event would not fit the configured bound (a queue
 * message); `events_unavailable` (503): events are not configured or the key secret is unset.
 * `field` names the input at fault. Never carries data, a token or a key.
 */
export type EventErrorCode = 'event_invalid_request' | 'event_too_large' | 'events_unavailable';

export class EventError extends GatehouseError {
  override readonly name = 'EventError';
  readonly code: EventErrorCode;
  readonly field: string | undefined;
  constructor(
    code: EventErrorCode,
    message: string,
    options?: { field?: string; cause?: unknown },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.field = options?.field;
  }
}
