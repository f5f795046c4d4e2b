/**
 * Cloudflare Workers entry point of the admin API: wiring only (the logic is in
 * src/workers/admin.ts). Deployed with wrangler.admin.toml, on the guard's KV namespace and
 * policy; the guard forwards `<prefix>/v1/admin` to it over its `ADMIN` service binding, so the
 * guard's own bundle carries no management code (docs/admin-api.md, "The Worker").
 */
import { env as startupEnv } from 'cloudflare:workers';
import policy from 'gatehouse:policy';
import { type AdminWorkerEnv, createAdminWorker } from '../src/workers/admin.ts';

export interface Env extends AdminWorkerEnv {
  readonly PERMISSIONS: KVNamespace;
}

const worker = createAdminWorker({
  policy,
  startupEnv: startupEnv as unknown as AdminWorkerEnv | undefined,
});

export default {
  fetch(request, env, ctx) {
    return worker.fetch(request, env, ctx);
  },
} satisfies ExportedHandler<Env>;
