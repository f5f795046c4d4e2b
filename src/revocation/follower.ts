/**
 * A follower of the revocation feed (feed.ts): one per isolate or container, in front of the
 * Gatehouse's permission cache.
 *
 * - At most once per `intervalMs`, and only when a request asks (no timers: an idle isolate reads
 *   nothing), it reads the changes since its epoch and evicts exactly those cache entries. Keys
 *   changed recently are reported by {@link RevocationFollower.isRecent}, so a store whose
 *   replicas lag (Workers KV) can read them from the feed instead. On `reset` (new follower, or
 *   too far behind) it drops every cached record.
 * - It keeps the feed's not-befores ("signed out everywhere") and revoked token ids, and refuses
 *   a principal whose token predates its subject's not-before (`session_revoked`) or whose `jti`
 *   was revoked (`token_revoked`). A Gatehouse delegation token is refused the same way for
 *   every party of its chain: the delegator's original token (`subject_iat`), each actor's token
 *   (`actor_iats`) and every token it was exchanged from (`parents`), so a sign-out or a revoked
 *   parent also ends the tokens derived from it. A signed event carries the same claims for the
 *   token that signed it (src/events/claims.ts), so the same checks reach events.
 * - Strict routes answer 503 (`revocation_unavailable`) once the feed has not been read for
 *   `strictMaxLagMs`; other routes keep the cache's TTL bound, and the outage is logged.
 * - Read your writes: a request carrying a consistency token (an epoch a management call
 *   returned) waits for a read that reaches it, or is answered 503 (`consistency_unavailable`).
 *
 * A new follower waits for its first read before it admits anyone (a revoked token must not pass
 * on a cold isolate); that read is bounded by `readTimeoutMs`. Until a read succeeds it refuses
 * every token (503 `revocation_unavailable`): sign-outs and revoked ids live only in the feed, so
 * no TTL bounds them. Requests no longer wait for the retries (an outage must not slow every
 * request of a new isolate). A follower that has read the feed keeps what it read when the feed
 * goes down: strict routes refuse, others keep the TTL bound.
 */
import { ACTOR_IATS_CLAIM, PARENTS_CLAIM, SUBJECT_IAT_CLAIM } from '../delegation/constants.ts';
import { ConfigError, numberOption } from '../errors.ts';
import { subjectStorageKey } from '../stores/keys.ts';
import type { Principal, SubjectKey } from '../types.ts';
import {
  type FeedAnswer,
  type FeedSource,
  MAX_TOKEN_LIFETIME_SECONDS,
  notBeforeLive,
  parseFeedKey,
} from './feed.ts';

/** The cache the follower evicts from (CachedStore). */
export interface EvictionTarget {
  invalidate(key?: SubjectKey): void;
  invalidateRoles(): void;
  invalidateRoles(tenant: string | undefined): void;
}

export type RevocationReason =
  | 'session_revoked'
  | 'token_revoked'
  | 'token_lifetime_unbounded'
  | 'revocation_unavailable'
  | 'consistency_unavailable';

/**
 * A read due after this many intervals without one (no requests meanwhile) is waited for: the
 * isolate was idle, and its cache may be older than the feed's bound.
 */
const IDLE_GAP_INTERVALS = 2;

export interface Refusal {
  readonly status: 401 | 503;
  readonly reason: RevocationReason;
  readonly explain: string;
}

export interface FollowerOptions {
  /** Milliseconds between feed reads while requests arrive; default 1000, 100 to 60000. */
  readonly intervalMs?: number;
  /** Milliseconds without a successful read after which strict routes answer 503; default 10000, 1000 to 3600000. */
  readonly strictMaxLagMs?: number;
  /** Milliseconds one feed read may take; default 1000, 100 to 30000. */
  readonly readTimeoutMs?: number;
  /** Milliseconds a changed key stays recent; default 120000 (the feed's `recentMs`). */
  readonly recentMs?: number;
  /**
   * True: a request that finds a read due waits for it (Lambda, where work after the answer is
   * frozen with the container). False (default): the read runs beside the request and the next
   * ones see its result; hand {@link RevocationFollower.pending} to `waitUntil` on Workers.
   */
  readonly awaitReads?: boolean;
  /** Clock, ms; default Date.now. */
  readonly now?: () => number;
  /** One entry per feed outage and recovery (never tokens or claims); default console.error JSON. */
  readonly log?: (entry: Readonly<Record<string, unknown>>) => void;
}

/** What {@link RevocationFollower.admit} checks beyond the principal. */
export interface AdmitOptions {
  /** False for a bare-subject check: no token, so no session or token id to refuse. */
  readonly session?: boolean;
  /** A strict route: refuse (503) when the feed has not been read for `strictMaxLagMs`. */
  readonly strict?: boolean | undefined;
  /** A consistency token: wait for a read at least this fresh, or refuse (503). */
  readonly consistency?: number | undefined;
}

export interface FollowerStats {
  /** Feed reads started. */
  readonly reads: number;
  readonly failures: number;
  /** Answers that dropped the whole cache. */
  readonly resets: number;
  /** Cache entries (users or tenants' roles) evicted by changes. */
  readonly evictions: number;
}

const SESSION_REVOKED: Refusal = Object.freeze({
  status: 401,
  reason: 'session_revoked',
  explain: 'The subject was signed out everywhere after this token was issued.',
});
const TOKEN_REVOKED: Refusal = Object.freeze({
  status: 401,
  reason: 'token_revoked',
  explain: 'This token was revoked.',
});

function seconds(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isFinite(value) ? value : undefined;
}

/** A read forced by a consistency token is not repeated sooner than this, ms. */
const CONSISTENCY_RETRY_MS = 100;

export class RevocationFollower {
  readonly #source: FeedSource;
  readonly #intervalMs: number;
  readonly #strictMaxLagMs: number;
  readonly #readTimeoutMs: number;
  readonly #recentMs: number;
  readonly #awaitReads: boolean;
  readonly #now: () => number;
  readonly #log: (entry: Readonly<Record<string, unknown>>) => void;
  readonly #targets: EvictionTarget[] = [];
  /** -1 until the first successful read. */
  #epoch = -1;
  #lastAttempt = Number.NEGATIVE_INFINITY;
  #lastSuccess = Number.NEGATIVE_INFINITY;
  #inflight: Promise<void> | undefined;
  /** The first read has settled (answered or failed): requests stop waiting for reads. */
  #started = false;
  /** The read in flight began after an idle gap: requests wait for it (see tick). */
  #catchingUp = false;
  #lastForced = Number.NEGATIVE_INFINITY;
  /** Counts reads started: an abandoned read that settles late must not apply its old answer. */
  #generation = 0;
  #down = false;
  readonly #notBefore = new Map<string, number>();
  readonly #tokens = new Map<string, number>();
  readonly #recent = new Map<string, number>();
  #reads = 0;
  #failures = 0;
  #resets = 0;
  #evictions = 0;

  constructor(source: FeedSource, options: FollowerOptions = {}) {
    if (typeof source !== 'object' || source === null || typeof source.read !== 'function') {
      throw new ConfigError('revocation.source', 'expected a feed source with read(since)');
    }
    this.#source = source;
    this.#intervalMs = numberOption(options.intervalMs, 'revocation.intervalMs', 100, 60_000, 1000);
    this.#strictMaxLagMs = numberOption(
      options.strictMaxLagMs,
      'revocation.strictMaxLagMs',
      1000,
      3_600_000,
      10_000,
    );
    this.#readTimeoutMs = numberOption(
      options.readTimeoutMs,
      'revocation.readTimeoutMs',
      100,
      30_000,
      1000,
    );
    this.#recentMs = numberOption(
      options.recentMs,
      'revocation.recentMs',
      1000,
      10_800_000,
      120_000,
    );
    this.#awaitReads = options.awaitReads ?? false;
    if (options.now !== undefined && typeof options.now !== 'function') {
      throw new ConfigError('revocation.now', 'expected a function returning milliseconds');
    }
    this.#now = options.now ?? Date.now;
    if (options.log !== undefined && typeof options.log !== 'function') {
      throw new ConfigError('revocation.log', 'expected a function receiving one log entry');
    }
    this.#log = options.log ?? ((entry) => console.error(JSON.stringify(entry)));
  }

  /** Adds a cache to evict from (the Gatehouse attaches its own). */
  attach(target: EvictionTarget): void {
    this.#targets.push(target);
  }

  /** The epoch of the last successful read; -1 before the first. */
  get epoch(): number {
    return this.#epoch;
  }

  get stats(): FollowerStats {
    return Object.freeze({
      reads: this.#reads,
      failures: this.#failures,
      resets: this.#resets,
      evictions: this.#evictions,
    });
  }

  /** The read in flight, if any: Workers hand it to `waitUntil` so it outlives the request. */
  get pending(): Promise<void> | undefined {
    return this.#inflight;
  }

  /** True while `key` (a feed key such as `user/-/s:alice`) changed within `recentMs`. */
  isRecent(key: string): boolean {
    const until = this.#recent.get(key);
    if (until === undefined) return false;
    if (this.#now() < until) return true;
    this.#recent.delete(key);
    return false;
  }

  /**
   * True when the feed has not been read successfully for `strictMaxLagMs`: what strict routes
   * refuse on, and what an answer covering strict routes for later requests must not ignore.
   */
  isLagging(): boolean {
    return this.#lagging();
  }

  /** True when the token id was revoked and the revocation has not run out. */
  isTokenRevoked(jti: string): boolean {
    const until = this.#tokens.get(jti);
    return until !== undefined && until * 1000 > this.#now();
  }

  /** The subject's not-before, Unix seconds, if it was signed out everywhere. */
  notBefore(key: SubjectKey): number | undefined {
    return this.#notBefore.get(subjectStorageKey(key));
  }

  /**
   * Starts a read when one is due. Returns a promise when the caller should wait for it: the
   * first read of a new follower (once: if it fails, later requests do not wait on retries), a
   * read that starts after an idle gap (below), or every read with `awaitReads`.
   */
  tick(): Promise<void> | undefined {
    const now = this.#now();
    if (this.#inflight !== undefined && now - this.#lastAttempt > this.#readTimeoutMs * 2) {
      // A read that outlived its own timeout: its timer was cancelled with the request that
      // started it (a Workers request context gone). Abandon it, or no read would start again and
      // the isolate would silently stop following the feed.
      this.#inflight = undefined;
      this.#catchingUp = false;
      this.#started = true;
      this.#failed(new Error('feed read abandoned'));
    }
    if (this.#inflight === undefined && now - this.#lastAttempt >= this.#intervalMs) {
      // Under steady traffic a read starts every interval and requests never wait: what they
      // miss is at most two intervals old. After an idle gap the cache may hold what changed
      // meanwhile (a request 20 s after a revoke was allowed once), so that read is waited for,
      // by every request that arrives while it runs, within readTimeoutMs. A failing feed is
      // still attempted every interval while requests arrive, so an outage is not an idle gap
      // and does not make each request wait.
      this.#catchingUp =
        this.#started && now - this.#lastAttempt >= IDLE_GAP_INTERVALS * this.#intervalMs;
      this.#start(now);
    }
    if (this.#inflight !== undefined && (this.#awaitReads || !this.#started || this.#catchingUp)) {
      return this.#inflight;
    }
    return undefined;
  }

  /** A read now (or the one in flight), whatever the interval. */
  sync(): Promise<void> {
    return this.#inflight ?? this.#start(this.#now());
  }

  /**
   * Null when the principal may proceed to its permission check; otherwise why not.
   * `session`: the principal came from a token (a bare-subject check has no session to revoke).
   */
  admit(
    principal: Principal,
    options: AdmitOptions = {},
  ): Refusal | null | Promise<Refusal | null> {
    let waiting = this.tick();
    // A strict request after idle: the read it just started may well succeed, so wait for it
    // (bounded by readTimeoutMs) rather than refuse on the old lastSuccess (review finding 8).
    // Not during a known outage: those requests get their 503 at once.
    if (waiting === undefined && options.strict === true && !this.#down && this.#lagging()) {
      waiting = this.#inflight;
    }
    const wanted = options.consistency;
    // The common case answers synchronously: no promise on the hot path.
    if (waiting === undefined && (wanted === undefined || wanted <= this.#epoch)) {
      return this.#verdict(principal, options);
    }
    return this.#admitLater(principal, options, waiting);
  }

  async #admitLater(
    principal: Principal,
    options: AdmitOptions,
    waiting: Promise<void> | undefined,
  ): Promise<Refusal | null> {
    if (waiting !== undefined) await waiting;
    const wanted = options.consistency;
    if (wanted !== undefined && wanted > this.#epoch) {
      // A read in flight may have started before the write the token names: wait for it, then
      // read again, at most once per CONSISTENCY_RETRY_MS however many requests ask.
      if (this.#inflight !== undefined) await this.#inflight;
      if (wanted > this.#epoch && this.#now() - this.#lastForced >= CONSISTENCY_RETRY_MS) {
        this.#lastForced = this.#now();
        await this.sync();
      } else if (wanted > this.#epoch && this.#inflight !== undefined) {
        await this.#inflight;
      }
      if (wanted > this.#epoch) {
        return {
          status: 503,
          reason: 'consistency_unavailable',
          explain: 'The permission data is not yet as fresh as the consistency token asks.',
        };
      }
    }
    return this.#verdict(principal, options);
  }

  #lagging(): boolean {
    return this.#now() - this.#lastSuccess > this.#strictMaxLagMs;
  }

  #verdict(principal: Principal, options: AdmitOptions): Refusal | null {
    if (options.strict === true && this.#lagging()) {
      return {
        status: 503,
        reason: 'revocation_unavailable',
        explain: 'Revocations could not be confirmed recently; this route refuses until they can.',
      };
    }
    if (options.session === false) return null;
    const self = principal.issuerKind === 'self';
    const chain = self && principal.actors.length > 0;
    if (this.#epoch < 0) {
      // Never read the feed (the first read failed or timed out): sign-outs and revoked token ids
      // live only there, so nothing bounds how stale this instance's view of them is. Refuse
      // rather than admit a signed-out token for as long as the feed stays unreadable (review
      // finding 6); warm instances keep what they last read.
      return {
        status: 503,
        reason: 'revocation_unavailable',
        explain: 'Sign-outs and revoked tokens could not be read yet; try again shortly.',
      };
    }
    if (this.#notBefore.size > 0) {
      const tenant = principal.tenant;
      // A delegation token is judged by when its delegator's own token was issued, not by its
      // own (fresh) iat; a token without the claim cannot show it came after a sign-out. A signed
      // event carries the same claim (its signing token's iat): its own iat is only when it was
      // signed, which a sign-out the edge had not read yet may precede (issue 13 review R2).
      const since =
        chain || (self && principal.claims[SUBJECT_IAT_CLAIM] !== undefined)
          ? seconds(principal.claims[SUBJECT_IAT_CLAIM])
          : principal.issuedAt;
      if (this.#signedOutSince(principal.subject, tenant, since)) return SESSION_REVOKED;
      if (chain) {
        const iats = principal.claims[ACTOR_IATS_CLAIM];
        for (let i = 0; i < principal.actors.length; i++) {
          const at = Array.isArray(iats) ? seconds(iats[i]) : undefined;
          const actor = principal.actors[i]!.subject;
          // The actor's own token may have named no tenant (tenants never mix, so it is the
          // delegator's or none): either sign-out ends what the actor holds.
          if (this.#signedOutSince(actor, tenant, at)) return SESSION_REVOKED;
          if (tenant !== undefined && this.#signedOutSince(actor, undefined, at)) {
            return SESSION_REVOKED;
          }
        }
      }
    }
    if (
      principal.issuedAt === undefined ||
      principal.expiresAt - principal.issuedAt > MAX_TOKEN_LIFETIME_SECONDS
    ) {
      // Not-befores are forgotten a year after their time; only a token that shows it lives no
      // longer than that cannot outlive a sign-out it predates (review finding 9).
      return {
        status: 401,
        reason: 'token_lifetime_unbounded',
        explain: 'Tokens must carry iat and live at most a year where sessions can be revoked.',
      };
    }
    if (this.#tokens.size > 0) {
      const jti = principal.claims.jti;
      if (typeof jti === 'string' && this.isTokenRevoked(jti)) return TOKEN_REVOKED;
      // Every Gatehouse-signed credential (a delegation token, a signed event) names the tokens
      // it derives from: revoking one of them ends it too.
      const parents = self ? principal.claims[PARENTS_CLAIM] : undefined;
      if (Array.isArray(parents)) {
        for (const parent of parents) {
          if (typeof parent === 'string' && this.isTokenRevoked(parent)) return TOKEN_REVOKED;
        }
      }
    }
    return null;
  }

  /** Whether the subject signed out everywhere after `issuedAt` (or it is unknown). */
  #signedOutSince(
    subject: string,
    tenant: string | undefined,
    issuedAt: number | undefined,
  ): boolean {
    const notBefore = this.#notBefore.get(
      subjectStorageKey(tenant === undefined ? { subject } : { subject, tenant }),
    );
    // A token without iat cannot show it came after the sign-out: refused (fail closed).
    return notBefore !== undefined && !(issuedAt !== undefined && issuedAt >= notBefore);
  }

  #start(now: number): Promise<void> {
    this.#lastAttempt = now;
    this.#reads++;
    const since = this.#epoch;
    const generation = ++this.#generation;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('feed read timed out')), this.#readTimeoutMs);
    });
    const run = Promise.race([this.#source.read(since), timeout])
      .then(
        (answer) => {
          if (generation === this.#generation) this.#apply(answer);
        },
        (error: unknown) => {
          if (generation === this.#generation) this.#failed(error);
        },
      )
      .finally(() => {
        if (timer !== undefined) clearTimeout(timer);
        this.#started = true;
        if (this.#inflight === run) {
          this.#inflight = undefined;
          this.#catchingUp = false;
        }
      });
    this.#inflight = run;
    return run;
  }

  #apply(answer: FeedAnswer): void {
    const now = this.#now();
    if (answer.reset) {
      this.#resets++;
      for (const target of this.#targets) {
        target.invalidate();
        target.invalidateRoles();
      }
      this.#notBefore.clear();
      this.#tokens.clear();
      this.#recent.clear();
    }
    for (const change of answer.changes) {
      for (const key of change.keys ?? []) {
        // Recent first, so the reload the eviction causes already reads the fresh value.
        const left = this.#recentMs - (answer.now - change.at);
        if (left > 0) this.#recent.set(key, now + left);
        if (!answer.reset) this.#evict(key);
      }
      if (change.notBefore !== undefined) {
        const { key, at } = change.notBefore;
        this.#notBefore.set(key, Math.max(this.#notBefore.get(key) ?? 0, at));
      }
      if (change.token !== undefined) {
        const { jti, expiresAt } = change.token;
        this.#tokens.set(jti, Math.max(this.#tokens.get(jti) ?? 0, expiresAt));
      }
    }
    for (const [jti, until] of this.#tokens) if (until * 1000 <= now) this.#tokens.delete(jti);
    for (const [key, at] of this.#notBefore) {
      if (!notBeforeLive(at, now)) this.#notBefore.delete(key);
    }
    this.#epoch = answer.head;
    this.#lastSuccess = now;
    if (this.#down) {
      this.#down = false;
      this.#safeLog({
        level: 'info',
        msg: 'gatehouse.revocation_feed_recovered',
        epoch: answer.head,
      });
    }
  }

  #evict(key: string): void {
    const what = parseFeedKey(key);
    if (what === undefined) return;
    for (const target of this.#targets) {
      if ('user' in what) target.invalidate(what.user);
      else target.invalidateRoles(what.roles.tenant);
      this.#evictions++;
    }
  }

  #failed(error: unknown): void {
    this.#failures++;
    if (this.#down) return;
    this.#down = true;
    // Once per outage: revocations now take up to the permission cache's TTL on this isolate.
    this.#safeLog({
      level: 'warn',
      msg: 'gatehouse.revocation_feed_unavailable',
      epoch: this.#epoch,
      error: error instanceof Error ? error.name : 'unknown',
    });
  }

  #safeLog(entry: Readonly<Record<string, unknown>>): void {
    try {
      this.#log(entry);
    } catch {
      // A broken sink must not break the follower.
    }
  }
}
