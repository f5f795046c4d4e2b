/**
 * An {@link AdminStore} that records every record change in the revocation feed (issue 14) after
 * the store has it, so a follower that sees the epoch and reloads reads the new record. Used
 * where the store itself is strongly consistent for reads (DynamoDB); on Workers KV the feed is
 * written before KV and carries the values (src/workers/revocation.ts), because KV replicas lag.
 *
 * Concurrent writes (an import writes many records at once) share feed entries: while one append
 * is under way, the keys written meanwhile gather into the next one (up to 100 keys each), so an
 * import costs a few feed entries rather than one per record, and writers do not race for epochs.
 */
import { type FeedWriter, feedKeys } from '../revocation/feed.ts';
import type { RoleRecord, SubjectKey, UserRecord } from '../types.ts';
import type { AdminStore, AuditFilter, AuditRecord, Progress, Snapshot } from './types.ts';

/** Keys one feed entry names at most. */
const MAX_KEYS_PER_CHANGE = 100;

export class FeedRecordingStore implements AdminStore {
  readonly description: string;
  readonly #inner: AdminStore;
  readonly #feed: FeedWriter;
  readonly checkKey?: (key: SubjectKey) => void;
  #gathering: { keys: Set<string>; waiters: [() => void, (error: unknown) => void][] } | undefined;
  #running = false;

  constructor(inner: AdminStore, feed: FeedWriter) {
    this.#inner = inner;
    this.#feed = feed;
    this.description = inner.description;
    if (inner.checkKey !== undefined) this.checkKey = (key) => inner.checkKey?.(key);
  }

  readUser(key: SubjectKey): Promise<UserRecord | null> {
    return this.#inner.readUser(key);
  }

  async writeUser(key: SubjectKey, before: UserRecord | null, after: UserRecord | null) {
    await this.#inner.writeUser(key, before, after);
    await this.#record(feedKeys.user(key));
  }

  readRoles(tenant: string | undefined): Promise<readonly RoleRecord[]> {
    return this.#inner.readRoles(tenant);
  }

  async writeRoles(
    tenant: string | undefined,
    before: readonly RoleRecord[],
    after: readonly RoleRecord[],
  ): Promise<void> {
    await this.#inner.writeRoles(tenant, before, after);
    await this.#record(feedKeys.roles(tenant));
  }

  /** Resolves once an append naming `key` and started after this call has been written. */
  #record(key: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.#gathering ??= { keys: new Set(), waiters: [] };
      this.#gathering.keys.add(key);
      this.#gathering.waiters.push([resolve, reject]);
      this.#pump();
    });
  }

  #pump(): void {
    if (this.#running || this.#gathering === undefined) return;
    const batch = this.#gathering;
    this.#gathering = undefined;
    this.#running = true;
    void (async () => {
      try {
        const keys = [...batch.keys];
        for (let i = 0; i < keys.length; i += MAX_KEYS_PER_CHANGE) {
          await this.#feed.append({ keys: keys.slice(i, i + MAX_KEYS_PER_CHANGE) });
        }
        for (const [resolve] of batch.waiters) resolve();
      } catch (error) {
        for (const [, reject] of batch.waiters) reject(error);
      } finally {
        this.#running = false;
        this.#pump();
      }
    })();
  }

  exportAll(progress?: Progress): Promise<Snapshot> {
    return this.#inner.exportAll(progress);
  }

  appendAudit(record: AuditRecord, retentionSeconds: number): Promise<void> {
    return this.#inner.appendAudit(record, retentionSeconds);
  }

  listAudit(filter: AuditFilter): Promise<readonly AuditRecord[]> {
    return this.#inner.listAudit(filter);
  }

  // Markers (`meta/seeded`) are not permission data: no feed entry.
  readMarker(name: string): Promise<string | null> {
    return this.#inner.readMarker(name);
  }

  writeMarker(name: string, value: string): Promise<void> {
    return this.#inner.writeMarker(name, value);
  }
}
