/**
 * The management CLI against local Workers KV: the same state `wrangler dev --persist-to` serves
 * (wrangler's platform proxy over a temporary directory), one proxy per command as on a shell.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describeCliTarget } from '../support/cli-suite.ts';

describeCliTarget('local Workers KV', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'gatehouse-cli-kv-'));
  const config = new URL('../../wrangler.toml', import.meta.url).pathname;
  return {
    args: ['--kv', 'local', '--config', config, '--persist-to', join(dir, 'state')],
    close: async () => rmSync(dir, { recursive: true, force: true }),
  };
});
