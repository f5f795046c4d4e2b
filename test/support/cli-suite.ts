/**
 * The management CLI, end to end against one real target (local KV, dynalite): every command,
 * invalid input writing nothing, audit records for each change, export → import round trip.
 * Each target's test file runs this suite: `describeCliTarget('dynamodb', setup)`.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ExplainResult } from '../../src/admin/explain.ts';
import type { AuditRecord } from '../../src/admin/types.ts';
import { devIssuer, mintDevToken } from '../../src/cli/token.ts';
import { type CliHarness, cliHarness } from './cli.ts';

export const CLI_SECRET = 'cli-test-secret-0123456789abcdef-0123456789';

export interface CliTarget {
  /** Target options for every call (`--dynamodb --table T --endpoint URL`, `--kv local ...`). */
  readonly args: readonly string[];
  close(): Promise<void>;
}

const policyFile = new URL('../../demo/policy.json', import.meta.url).pathname;
const seedFile = new URL('../../demo/permissions.json', import.meta.url).pathname;

export function describeCliTarget(name: string, setup: () => Promise<CliTarget>): void {
  describe(`gatehouse CLI against ${name}`, () => {
    let target: CliTarget;
    let cli: CliHarness;
    let dir: string;
    const env = { GATEHOUSE_DEV_SECRET: CLI_SECRET };

    const token = (subject: string) =>
      mintDevToken({
        subject,
        ttlSeconds: 600,
        secret: CLI_SECRET,
        issuer: devIssuer(JSON.parse(readFileSync(policyFile, 'utf8'))),
      });

    beforeAll(async () => {
      target = await setup();
      dir = mkdtempSync(join(tmpdir(), 'gatehouse-cli-'));
      cli = cliHarness({
        common: [...target.args, '--policy', policyFile, '--vars', join(dir, 'none')],
        env,
      });
      const seeded = await cli.run('import', seedFile);
      expect(seeded.err).toBe('');
      expect(seeded.code).toBe(0);
    });

    afterAll(async () => {
      await target?.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    });

    it('grant, check, revoke: the decision follows the store', async () => {
      const before = await cli.run('check', '--subject', 'dave', 'GET', '/stats');
      expect(before.code).toBe(1);
      expect(before.out).toContain('DENY 403 missing_permission');

      const granted = await cli.run('grant', 'dave', 'read:stats', '--expires', '2h');
      expect(granted.code).toBe(0);
      expect(granted.out).toMatch(/^granted read:stats to dave \[/);

      const allowed = await cli.run('check', '--token', await token('dave'), 'GET', '/stats');
      expect(allowed).toMatchObject({ code: 0 });
      expect(allowed.out).toContain('ALLOW 200 allowed');

      expect((await cli.run('revoke', 'dave', 'read:stats')).code).toBe(0);
      expect((await cli.run('check', '--subject', 'dave', 'GET', '/stats')).code).toBe(1);
      const again = await cli.run('revoke', 'dave', 'read:stats');
      expect(again.code).toBe(1);
      expect(again.err).toContain('dave has no direct grant read:stats');
    });

    it('check --explain traces the route, the grants considered and why', async () => {
      await cli.run('grant', 'erin', 'read:stats', '--if', 'ip=10.0.0.0/8');
      await cli.run('assign', 'erin', 'reader');
      const text = await cli.run(
        'check',
        '--token',
        await token('erin'),
        'GET',
        '/stats',
        '--ip',
        '203.0.113.9',
        '--explain',
      );
      expect(text.code).toBe(1);
      expect(text.out).toContain('route      GET /stats');
      expect(text.out).toMatch(
        /read:stats \(direct\): condition_false, ip 10\.0\.0\.0\/8: does not hold for 203\.0\.113\.9/,
      );
      expect(text.out).toContain('read:posts (role reader)');
      const json = await cli.json<ExplainResult>(
        'check',
        '--subject',
        'erin',
        'GET',
        '/stats',
        '--ip',
        '10.2.3.4',
        '--explain',
      );
      expect(json.answer.allow).toBe(true);
      expect(json.trace.permissions[0]?.considered[0]?.outcome).toBe('applies');
    });

    it('deny wins over a role; undeny lifts it', async () => {
      await cli.run('assign', 'frank', 'editor');
      expect((await cli.run('check', '--subject', 'frank', 'POST', '/posts/1/publish')).code).toBe(
        0,
      );
      await cli.run('deny', 'frank', 'publish:posts');
      const denied = await cli.run('check', '--subject', 'frank', 'POST', '/posts/1/publish');
      expect(denied.out).toContain('explicit_deny');
      await cli.run('undeny', 'frank', 'publish:posts');
      expect((await cli.run('check', '--subject', 'frank', 'POST', '/posts/1/publish')).code).toBe(
        0,
      );
      await cli.run('unassign', 'frank', 'editor');
      expect((await cli.run('check', '--subject', 'frank', 'POST', '/posts/1/publish')).code).toBe(
        1,
      );
    });

    it('role put / list / rm, and show lists each permission with its origin', async () => {
      const put = await cli.run(
        'role',
        'put',
        'analyst',
        '--grant',
        'read:stats',
        '--inherits',
        'reader',
        '--tenant',
        'acme',
      );
      expect(put.code).toBe(0);
      await cli.run('assign', 'gina', 'analyst', '--tenant', 'acme');
      await cli.run(
        'grant',
        'gina',
        'read:drafts',
        '--tenant',
        'acme',
        '--expires',
        '2026-12-31T00:00:00Z',
      );
      const shown = await cli.run('show', 'gina', '--tenant', 'acme');
      expect(shown.out).toMatch(/allow read:drafts\s+direct\s+until 2026-12-31T00:00:00\.000Z/);
      expect(shown.out).toMatch(/allow read:stats\s+role analyst/);
      expect(shown.out).toMatch(/allow read:posts\s+role analyst → reader/);
      const listed = await cli.json<{ store: { name: string }[] }>(
        'role',
        'list',
        '--tenant',
        'acme',
      );
      expect(listed.store.map((r) => r.name)).toEqual(['analyst']);
      // Untenanted gina does not exist; the acme role is not visible outside acme.
      expect((await cli.run('assign', 'gina', 'analyst')).code).toBe(2);
      expect((await cli.run('role', 'rm', 'analyst', '--tenant', 'acme')).code).toBe(0);
      expect((await cli.run('role', 'rm', 'analyst', '--tenant', 'acme')).code).toBe(1);
    });

    it('invalid input exits non-zero with a clear message and writes nothing', async () => {
      const exported = await cli.run('export');
      const cases: [string[], RegExp][] = [
        [['grant', 'hank', 'read stats'], /grant\.permission/],
        [['grant', 'hank', 'read:stats', '--if', 'ip=10.0.0.0/33'], /ip\[0\]/],
        [['grant', 'hank', 'read:stats', '--if', 'colour=red'], /expected one of ip/],
        [['grant', 'hank', 'read:stats', '--expires', 'tomorrow'], /--expires/],
        [['grant', 'hank', 'read:stats', '--expires', '2020-01-01T00:00:00Z'], /future/],
        [['grant', 'hank', 'read:stats', '--expire', '2h'], /unknown option --expire/],
        [['assign', 'hank', 'no-such-role'], /no role no-such-role/],
        [['role', 'put', 'loop', '--inherits', 'loop'], /cycle|inherit/i],
        [['grant', 'hank'], /missing <permission>/],
        [['check', 'GET', '/stats'], /exactly one of --token or --subject/],
        [['grant', 'hank', 'read:stats', '--retention-days', '0'], /retention-days/],
        [['grant', 'x'.repeat(3000), 'read:stats'], /too long/],
      ];
      for (const [argv, message] of cases) {
        const result = await cli.run(...argv);
        expect(result.code, argv.join(' ')).toBe(2);
        expect(result.err, argv.join(' ')).toMatch(message);
      }
      expect((await cli.run('export')).out).toBe(exported.out);
      const json = await cli.run('revoke', 'hank', 'read:stats', '--json');
      expect(json.code).toBe(1);
      expect(JSON.parse(json.err)).toMatchObject({
        error: { code: 'not_found', field: 'permission' },
      });
    });

    it('audits every change with actor, operation, target, before and after', async () => {
      await cli.run('grant', 'ivy', 'read:stats', '--actor', 'ops:jo');
      await cli.run('revoke', 'ivy', 'read:stats', '--actor', 'ops:jo');
      const records = await cli.json<AuditRecord[]>('audit', '--subject', 'ivy');
      expect(records.map((r) => r.operation)).toEqual(['revoke', 'grant']);
      expect(records[1]).toMatchObject({
        actor: 'ops:jo',
        via: 'cli',
        target: { subject: 'ivy' },
        before: null,
        after: { grants: [{ permission: 'read:stats' }] },
      });
      expect(records[0]?.before).toEqual(records[1]?.after);
      const text = await cli.run('audit', '--subject', 'ivy', '--since', '1h');
      expect(text.out).toMatch(/ops:jo\s+revoke\s+subject ivy/);
      const all = await cli.json<AuditRecord[]>('audit', '--since', '1d');
      const operations = new Set(all.map((r) => r.operation));
      for (const op of ['import', 'grant', 'revoke', 'deny', 'undeny', 'assign', 'unassign']) {
        expect(operations.has(op as AuditRecord['operation']), op).toBe(true);
      }
      expect(operations.has('role.put') && operations.has('role.rm')).toBe(true);
    });

    it('export then import round-trips and writes nothing', async () => {
      const exported = await cli.run('export');
      expect(exported.code).toBe(0);
      const file = join(dir, 'export.json');
      writeFileSync(file, exported.out);
      const result = await cli.json<{ written: number; deleted: number }>('import', file);
      expect(result).toMatchObject({ written: 0, deleted: 0 });
      expect((await cli.run('export')).out).toBe(exported.out);
      const dry = await cli.run('import', file, '--dry-run');
      expect(dry.out).toContain('is valid');
    });

    it('import --dry-run refuses what import refuses (an undefined role), writing nothing', async () => {
      const before = (await cli.run('export')).out;
      const file = join(dir, 'undefined-role.json');
      writeFileSync(file, JSON.stringify({ user_roles: { newbie: ['nosuchrole'] } }));

      const dry = await cli.run('import', file, '--dry-run');
      const real = await cli.run('import', file);

      expect(dry.code).toBe(2);
      expect(dry.err).toContain('user_roles.newbie[0]');
      expect(real.code).toBe(2);
      expect(real.err).toBe(dry.err);
      expect((await cli.run('export')).out).toBe(before);
    });

    it('refuses with exit 2 a change that would grow a record past MAX_RECORD_ENTRIES', async () => {
      const small = cliHarness({
        common: [...target.args, '--policy', policyFile, '--vars', join(dir, 'none')],
        env: { ...env, MAX_RECORD_ENTRIES: '2' },
      });
      expect((await small.run('grant', 'hoarder', 'read:a')).code).toBe(0);
      expect((await small.run('deny', 'hoarder', 'read:b')).code).toBe(0);

      const grown = await small.run('grant', 'hoarder', 'read:c', '--json');
      const file = join(dir, 'too-large.json');
      writeFileSync(file, JSON.stringify({ users: { heap: { grants: ['a:a', 'b:b', 'c:c'] } } }));
      const imported = await small.run('import', file);
      const dry = await small.run('import', file, '--dry-run');

      expect(grown.code).toBe(2);
      expect(JSON.parse(grown.err)).toMatchObject({
        error: { code: 'record_too_large', field: 'subject' },
      });
      expect(imported.code).toBe(2);
      expect(imported.err).toContain('at most 2');
      expect(dry.code).toBe(2);
      const shown = await cli.json<{ record: { grants: unknown[] } }>('show', 'hoarder');
      expect(shown.record.grants).toHaveLength(1);
    });

    it('an import with a subject the store cannot key writes nothing', async () => {
      const before = (await cli.run('export')).out;
      const file = join(dir, 'long.json');
      const users: Record<string, { grants: string[] }> = {};
      for (let i = 0; i < 40; i++) users[`fine-${i}`] = { grants: ['read:posts'] };
      users['y'.repeat(3000)] = { grants: ['read:posts'] };
      writeFileSync(file, JSON.stringify({ users }));
      const result = await cli.run('import', file);
      expect(result.code).toBe(2);
      expect(result.err).toMatch(/too long/);
      expect((await cli.run('export')).out).toBe(before);
    });

    it('a broken import file names the path and writes nothing', async () => {
      const before = (await cli.run('export')).out;
      const file = join(dir, 'broken.json');
      writeFileSync(
        file,
        JSON.stringify({
          users: { a: { grants: ['ok:one'] }, b: { grants: [{ permission: 'x:y', expire: 1 }] } },
        }),
      );
      const result = await cli.run('import', file);
      expect(result.code).toBe(2);
      expect(result.err).toContain('users.b.grants[0]');
      expect((await cli.run('export')).out).toBe(before);
    });

    it('prints a progress line for a large import', async () => {
      const users: Record<string, { grants: string[] }> = {};
      for (let i = 0; i < 400; i++) users[`bulk-${i}`] = { grants: ['read:posts'] };
      const file = join(dir, 'bulk.json');
      writeFileSync(file, JSON.stringify({ users }));
      const result = await cli.run('import', file);
      expect(result.code).toBe(0);
      expect(result.err).toMatch(/imported 400\/400 records \(100%\)/);
      expect(result.out).toContain('400 records written');
    });

    it('--help works on every command', async () => {
      for (const command of [
        'grant',
        'revoke',
        'deny',
        'undeny',
        'assign',
        'unassign',
        'role',
        'show',
        'check',
        'import',
        'export',
        'audit',
      ]) {
        const result = await cli.run(command, '--help');
        expect(result.code, command).toBe(0);
        expect(result.out, command).toMatch(new RegExp(`^Usage: gatehouse ${command}`));
      }
    });
  });
}
