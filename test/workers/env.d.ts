/** Bindings the Worker tests see (wrangler.toml), the main module, and global-setup values. */
export {};

declare global {
  namespace Cloudflare {
    interface GlobalProps {
      mainModule: typeof import('../../handlers/worker.ts');
    }
    interface Env {
      readonly PERMISSIONS: KVNamespace;
      readonly ORIGIN?: string;
      readonly FORWARD_AUTHORIZATION?: string;
      readonly GATEHOUSE_PREFIX?: string;
      readonly KV_CACHE_TTL?: string;
      readonly AUDIT_RETENTION_DAYS?: string;
      readonly GATEHOUSE_DEV_SECRET?: string;
      /** Gatehouse's delegation and event signing keys, generated per run (vitest.config.ts). */
      readonly GATEHOUSE_DELEGATION_KEYS?: string;
      readonly FORWARD_OVERRIDE_HEADERS?: string;
      readonly DECISION_LOG?: string;
      readonly DECISION_LOG_ALLOW_SAMPLE_RATE?: string;
      /** The admin Worker in production; here an echo of what crossed the binding (vitest.config.ts). */
      readonly ADMIN: Fetcher;
      /** The revocation feed's Durable Object (wrangler.toml). */
      readonly REVOCATION: DurableObjectNamespace;
    }
  }
}

declare module 'vitest' {
  interface ProvidedContext {
    /** Base URL of the loopback JWKS server started by test/workers/global-setup.ts. */
    jwksBaseUrl: string;
  }
}
