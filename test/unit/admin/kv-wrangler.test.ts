// The wrangler CLI adapter (`--kv remote` in production) run against local state: the same
// commands with `--local --persist-to` instead of `--remote`. Each call is one wrangler process
// (about a second), so the tests keep to a handful.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type LocalKv,
  openLocalKv,
  WranglerCommandError,
  wranglerKv,
} from '../../../src/cli/kv-targets.ts';
import { StoreError } from '../../../src/errors.ts';
import type { UserRecord } from '../../../src/types.ts';
import { KvAdminStore } from '../../../src/workers/kv-admin-store.ts';
import { KvStore } from '../../../src/workers/kv-store.ts';

const configPath = fileURLToPath(new URL('../../../wrangler.toml', import.meta.url));

describe('wranglerKv (wrangler CLI, --local --persist-to)', () => {
  let dir: string;
  let local: LocalKv;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'gatehouse-kv-wrangler-'));
    local = await openLocalKv({ configPath, persistTo: dir });
  });
  afterAll(async () => {
    await local?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('puts, lists, reads and deletes through wrangler, in the state the platform proxy uses', async () => {
    const kv = wranglerKv({ remote: false, configPath, persistTo: dir });
    const value = '{"grants":["read:ünïcødé"]}\nsecond line ✓ 😀\n';
    const now = Date.now() / 1000;

    await kv.put('audit/x', value, { expirationTtl: 3600, metadata: { target: { subject: 'ü' } } });
    await local.namespace.put('user/-/s:proxy', 'from the proxy');
    const { keys, list_complete } = await kv.list({ prefix: 'audit/' });
    const read = await kv.getMany(['audit/x', 'user/-/s:proxy', 'user/-/s:missing']);
    const seenByProxy = await local.namespace.get('audit/x', 'text');
    await kv.delete('audit/x');
    const afterDelete = await local.namespace.get('audit/x', 'text');

    expect(list_complete).toBe(true);
    expect(keys).toHaveLength(1);
    expect(keys[0]).toMatchObject({ name: 'audit/x', metadata: { target: { subject: 'ü' } } });
    expect(keys[0]!.expiration).toBeGreaterThanOrEqual(Math.floor(now + 3600) - 5);
    expect(keys[0]!.expiration).toBeLessThanOrEqual(Math.ceil(now + 3600) + 60);
    expect(read).toEqual(
      new Map([
        ['audit/x', value],
        ['user/-/s:proxy', 'from the proxy'],
        ['user/-/s:missing', null],
      ]),
    );
    expect(seenByProxy).toBe(value);
    expect(afterDelete).toBeNull();
  });

  it('carries KvAdminStore: what it writes through wrangler the edge store reads', async () => {
    const store = new KvAdminStore(wranglerKv({ remote: false, configPath, persistTo: dir }));
    const record: UserRecord = {
      subject: 'zoë:1',
      tenant: 'acme',
      roles: [{ role: 'reader', expiresAt: 4_102_444_800 }],
      grants: [{ permission: 'read:stats', when: { ip: ['10.0.0.0/8'] } }],
      denies: [],
    };

    await store.writeUser({ subject: 'zoë:1', tenant: 'acme' }, null, record);
    const read = await store.readUser({ subject: 'zoë:1', tenant: 'acme' });

    expect(read).toEqual(record);
    expect(
      await new KvStore(local.namespace).getUser({ subject: 'zoë:1', tenant: 'acme' }),
    ).toEqual(record);
  });

  it('turns a failing wrangler run into store_unavailable, with wrangler’s words in the cause', async () => {
    const kv = wranglerKv({
      remote: false,
      configPath,
      persistTo: dir,
      binding: 'NO_SUCH_BINDING',
    });

    const error = await new KvAdminStore(kv).readRoles(undefined).catch((e: unknown) => e);

    expect(error).toBeInstanceOf(StoreError);
    expect(error).toMatchObject({ code: 'store_unavailable' });
    expect((error as Error).cause).toBeInstanceOf(WranglerCommandError);
    expect(((error as Error).cause as Error).message).toContain('NO_SUCH_BINDING');
  });
});
