/**
 * Cloudflare Workers entry point: wiring only (the logic is in src/workers/guard.ts).
 *
 * - default export: the route guard, with the check API and forward-auth under GATEHOUSE_PREFIX;
 * - `GatehouseCheck`: the check as RPC methods for service bindings;
 * - `RevocationFeed`: the revocation feed's Durable Object (src/workers/revocation.ts), which
 *   wrangler needs exported from the Worker that defines it; the admin Worker binds it too.
 *
 * The policy is bundled at build time through wrangler.toml's `[alias]` for `gatehouse:policy`
 * and validated when this module loads, so a bad policy fails `wrangler dev` / `wrangler deploy`
 * naming the field. The Gatehouse itself (KV store, caches) is built once per isolate, on the
 * first request.
 */
import { env as startupEnv, WorkerEntrypoint } from 'cloudflare:workers';
import policy from 'gatehouse:policy';
import type { EventDecision, SignOutcome } from '../src/events/events.ts';
import type { CheckAnswer } from '../src/http/check-api.ts';
import { createGatehouseWorker, type GatehouseWorkerEnv } from '../src/workers/guard.ts';
import { RevocationFeedObject } from '../src/workers/revocation.ts';
import { feedObjectOptions } from '../src/workers/setup.ts';

export interface Env extends GatehouseWorkerEnv {
  readonly PERMISSIONS: KVNamespace;
  readonly REVOCATION?: DurableObjectNamespace;
}

/**
 * The revocation feed's Durable Object (wrangler.toml `[[durable_objects.bindings]]`). It keeps
 * values for the guard's recent window, derived from the same policy and `KV_CACHE_TTL`.
 */
export class RevocationFeed extends RevocationFeedObject {
  constructor(state: DurableObjectState, env: Env) {
    super(state, env, feedObjectOptions(policy, env as unknown as Record<string, unknown>));
  }
}

const worker = createGatehouseWorker({
  policy,
  startupEnv: startupEnv as unknown as GatehouseWorkerEnv | undefined,
});

export default {
  fetch(request, env, ctx) {
    return worker.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;

/**
 * The check API for other Workers over a service binding:
 * `[[services]] binding = "GATEHOUSE", service = "gatehouse", entrypoint = "GatehouseCheck"`,
 * then `await env.GATEHOUSE.check({ subject: 'alice', permission: 'read:posts' })`.
 */
export class GatehouseCheck extends WorkerEntrypoint<Env> {
  // this.ctx: each call's work goes to waitUntil like a guard request's, so a store load that
  // guard requests joined is not cancelled when the RPC caller goes away.
  check(item: unknown): Promise<CheckAnswer> {
    return worker.check(item, this.env, this.ctx);
  }

  checkBatch(items: unknown): Promise<CheckAnswer[]> {
    return worker.checkBatch(items, this.env, this.ctx);
  }

  /** Signs an event for the holder of `token` (issue 13; docs/events.md). */
  signEvent(request: unknown): Promise<SignOutcome> {
    return worker.signEvent(request, this.env, this.ctx);
  }

  /** Verifies an event and re-checks its permission now (docs/events.md). */
  verifyEvent(event: unknown): Promise<EventDecision> {
    return worker.verifyEvent(event, this.env, this.ctx);
  }
}
