/**
 * Where the CLI reads and writes permissions: local KV (the state `wrangler dev` uses), remote
 * KV (Cloudflare's API through wrangler), or a DynamoDB table (AWS, or a local server through
 * --endpoint). Each target gives the write side (AdminStore) and the read side the edges use
 * (PermissionStore), so `check` decides through exactly the store code the edge runs.
 *
 * Node-only; imported lazily by the management commands, so `gatehouse token` stays light.
 */
import type { AdminStore } from '../admin/types.ts';
import type { TrackedFeed } from '../revocation/feed.ts';
import type { PermissionStore } from '../types.ts';
import type { CliIo } from './io.ts';
import { DYNAMODB_CLIENT, loadOptional } from './optional.ts';

export interface TargetOptions {
  readonly kind: 'kv-local' | 'kv-remote' | 'dynamodb';
  readonly table?: string;
  readonly endpoint?: string;
  readonly region?: string;
  readonly persistTo?: string;
  readonly config?: string;
  readonly binding?: string;
}

export interface OpenTarget {
  readonly admin: AdminStore;
  /**
   * The revocation feed changes are recorded in (sign-outs and token revocations need it), when
   * the target has one reachable; its latest epoch is the consistency token.
   */
  readonly feed?: TrackedFeed;
  readonly reader: PermissionStore;
  /** For output: `kv local .wrangler/state`, `dynamodb table T`. */
  readonly description: string;
  close(): Promise<void>;
}

export const TARGET_USAGE = `Target (default --kv local):
  --kv local             the local KV state \`wrangler dev\` / \`npm start\` use (.wrangler/state)
  --kv remote            the deployed KV namespace, through wrangler (run \`wrangler login\` first)
  --binding <name>       KV binding in wrangler.toml (default PERMISSIONS)
  --config <file>        wrangler config (default wrangler.toml)
  --persist-to <dir>     local state directory (default .wrangler/state)
  --dynamodb             a DynamoDB table (AWS credentials from the usual SDK chain)
  --table <name>         the table (template.yaml's PermissionsTable)
  --endpoint <url>       a local DynamoDB-compatible server, e.g. http://127.0.0.1:8000
  --region <region>      AWS region (default $AWS_REGION or us-east-1)`;

export async function openTarget(options: TargetOptions, io: CliIo): Promise<OpenTarget> {
  if (options.kind === 'dynamodb') return openDynamoDB(options, io);
  return openKv(options);
}

async function openKv(options: TargetOptions): Promise<OpenTarget> {
  const [{ KvAdminStore }, { KvStore }, targets] = await Promise.all([
    import('../workers/kv-admin-store.ts'),
    import('../workers/kv-store.ts'),
    import('./kv-targets.ts'),
  ]);
  // Both KV targets run wrangler (an optional peer dependency): a missing one is reported first,
  // as one line naming it, before any configuration is read.
  await targets.wranglerBinary();
  const binding = options.binding ?? 'PERMISSIONS';
  const configPath = options.config ?? 'wrangler.toml';
  const persistTo = options.persistTo ?? '.wrangler/state';
  if (options.kind === 'kv-local') {
    const local = await targets.openLocalKv({ configPath, persistTo, binding });
    return {
      admin: new KvAdminStore(local.namespace),
      ...(local.feed !== undefined && { feed: local.feed }),
      reader: new KvStore(local.namespace),
      description: `kv local ${persistTo}`,
      close: () => local.close(),
    };
  }
  const remote = targets.wranglerKv({ remote: true, binding, configPath, persistTo });
  return {
    admin: new KvAdminStore(remote),
    reader: new KvStore(textReader(remote)),
    description: `kv remote (binding ${binding})`,
    close: async () => {},
  };
}

/** KvStore reads `{ type: 'text' }`; the wrangler adapter takes the type as a string. */
function textReader(namespace: {
  get(key: string, type: 'text'): Promise<string | null>;
}): ConstructorParameters<typeof import('../workers/kv-store.ts').KvStore>[0] {
  return {
    async get(key: string) {
      return namespace.get(key, 'text');
    },
    async put() {
      throw new Error('read-only');
    },
    async delete() {
      throw new Error('read-only');
    },
  };
}

async function openDynamoDB(options: TargetOptions, io: CliIo): Promise<OpenTarget> {
  const [
    { createDynamoDBClient, DynamoDBStore },
    { DynamoDBAdminStore },
    { DynamoDBFeed },
    { FeedRecordingStore },
    { TrackedFeed },
  ] = await loadOptional(DYNAMODB_CLIENT, () =>
    Promise.all([
      import('../aws/dynamodb-store.ts'),
      import('../aws/dynamodb-admin-store.ts'),
      import('../aws/revocation-feed.ts'),
      import('../admin/feed-store.ts'),
      import('../revocation/feed.ts'),
    ]),
  );
  const tableName = options.table!;
  const region = options.region ?? io.env.AWS_REGION ?? 'us-east-1';
  const local = options.endpoint !== undefined;
  // Management calls are few and may be large (import): the edge's tight timeouts do not fit.
  const client = createDynamoDBClient({
    region,
    ...(local && {
      endpoint: options.endpoint!,
      // A local server accepts any credentials; real ones must never be needed for it.
      credentials: {
        accessKeyId: io.env.AWS_ACCESS_KEY_ID || 'local',
        secretAccessKey: io.env.AWS_SECRET_ACCESS_KEY || 'local',
      },
    }),
    connectionTimeoutMs: 3000,
    requestTimeoutMs: 10_000,
  });
  // The revocation feed lives in the same table: every change is recorded there after it lands.
  const feed = new TrackedFeed(new DynamoDBFeed({ client, tableName }));
  return {
    admin: new FeedRecordingStore(new DynamoDBAdminStore({ client, tableName }), feed),
    feed,
    reader: new DynamoDBStore({ client, tableName, consistentRead: true, deadlineMs: 15_000 }),
    description: `dynamodb table ${tableName}${local ? ` at ${options.endpoint}` : ''}`,
    close: async () => {
      client.destroy();
    },
  };
}
