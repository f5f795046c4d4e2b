/**
 * The management commands: grant, revoke, deny, undeny, assign, unassign, role, show, check,
 * import, export, audit. Each parses its arguments strictly, opens the target store, and calls
 * PermissionAdmin (src/admin/operations.ts), where every rule lives; nothing is written unless
 * the whole input is valid.
 *
 * Exit codes: 0 done (for `check`: allowed), 1 refused or failed (for `check`: denied; not
 * found, conflict, store errors), 2 usage or invalid input (also a change that would make a
 * record exceed its bound, `record_too_large`).
 */
import { explainRequest, formatExplain } from '../admin/explain.ts';
import { type PermissionAdmin as Admin, PermissionAdmin } from '../admin/operations.ts';
import { parseExpiry as parseExpiryText, parseSince as parseSinceText } from '../admin/time.ts';
import type { AuditRecord } from '../admin/types.ts';
import { AdminError, ConfigError } from '../errors.ts';
import { Gatehouse } from '../policy/decide.ts';
import { type CompiledPolicy, compilePolicy } from '../policy/policy.ts';
import { parsePolicyText } from '../policy/text.ts';
import type { Conditions, Grant, SubjectKey, Weekday } from '../types.ts';
import {
  flag,
  listOption,
  type OptionSpecs,
  type ParsedArgs,
  parseArgs,
  stringOption,
} from './args.ts';
import { type CliIo, parseDotenv, UsageError } from './io.ts';
import { openTarget, TARGET_USAGE, type TargetOptions } from './targets.ts';
import { configuredPolicyFile, devVarsBeside } from './wrangler-config.ts';

const COMMON_OPTIONS: OptionSpecs = {
  tenant: { value: true },
  json: {},
  policy: { value: true },
  vars: { value: true },
  kv: { value: true },
  dynamodb: {},
  table: { value: true },
  endpoint: { value: true },
  region: { value: true },
  'persist-to': { value: true },
  config: { value: true },
  binding: { value: true },
  actor: { value: true },
  'retention-days': { value: true },
  help: { short: 'h' },
};

const COMMON_USAGE = `Common options:
  --tenant <T>           the tenant the subject or role belongs to (default: none)
  --json                 machine-readable output
  --policy <file>        policy (JSON or YAML; default $GATEHOUSE_POLICY, else the file the
                         wrangler config's [alias] "gatehouse:policy" names (what the Worker
                         bundles), else demo/policy.json)
  --vars <file>          dotenv file with secrets the policy names (default .dev.vars beside
                         the wrangler config)
  --actor <name>         who is making the change, for the audit trail
                         (default $GATEHOUSE_ACTOR, else cli:$USER)
  --retention-days <n>   days audit records are kept (default $AUDIT_RETENTION_DAYS or 90)
${TARGET_USAGE}
  -h, --help             this help`;

interface Command {
  readonly summary: string;
  readonly usage: string;
  readonly options?: OptionSpecs;
  run(parsed: ParsedArgs, io: CliIo): Promise<number>;
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

function positional(parsed: ParsedArgs, index: number, name: string): string {
  const value = parsed.positionals[index];
  if (value === undefined || value === '') throw new UsageError(`missing <${name}>`);
  return value;
}

function expectPositionals(parsed: ParsedArgs, count: number): void {
  if (parsed.positionals.length > count) {
    throw new UsageError(`unexpected argument ${parsed.positionals[count]}`);
  }
}

function subjectKey(parsed: ParsedArgs, subject: string): SubjectKey {
  const tenant = stringOption(parsed, 'tenant');
  return tenant === undefined ? { subject } : { subject, tenant };
}

/**
 * `2h`, `30m`, `7d` (from now), an ISO 8601 time with zone, or Unix seconds. A bare number is
 * Unix seconds, never a duration: `--expires 3600` meaning 1970 would be refused as past.
 */
export function parseExpiry(text: string, nowMs: number): number {
  const parsed = parseExpiryText(/^\d+$/.test(text) ? Number(text) : text, nowMs);
  if (parsed.ok) return parsed.unixSeconds;
  if (parsed.problem === 'duration') throw new UsageError(`--expires: ${text} is not a duration`);
  throw new UsageError(
    `--expires: expected a duration (90s, 15m, 2h, 7d, 2w), an ISO time with zone, or Unix seconds`,
  );
}

const WEEKDAYS: readonly Weekday[] = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'];

function parseDays(text: string): Weekday[] {
  const out: Weekday[] = [];
  for (const part of text.toLowerCase().split(',')) {
    const range = /^([a-z]{3})-([a-z]{3})$/.exec(part);
    if (range) {
      const from = WEEKDAYS.indexOf(range[1] as Weekday);
      const to = WEEKDAYS.indexOf(range[2] as Weekday);
      if (from === -1 || to === -1 || to < from) {
        throw new UsageError(`--if days=${text}: expected days such as mon-fri or sat,sun`);
      }
      out.push(...WEEKDAYS.slice(from, to + 1));
    } else if (WEEKDAYS.includes(part as Weekday)) {
      out.push(part as Weekday);
    } else {
      throw new UsageError(`--if days=${text}: expected days such as mon-fri or sat,sun`);
    }
  }
  return out;
}

function scalar(text: string): string | number | boolean {
  if (text === 'true') return true;
  if (text === 'false') return false;
  // Only numbers that read back the same: `007` or `1.50` stay strings (an ID claim).
  if (/^-?\d+(\.\d+)?$/.test(text) && String(Number(text)) === text) return Number(text);
  return text;
}

/**
 * Conditions from `--if key=value` (repeatable) and `--when <json>`:
 *   ip=10.0.0.0/8[,CIDR...]   country=DE[,FR...]   time=09:00-17:00   days=mon-fri
 *   tz=Europe/Berlin          claim.<name>=<value>[,<value>...]
 * Validation of the values themselves is the core's (the same rules the edges apply).
 */
export function parseConditions(
  ifs: readonly string[],
  when: string | undefined,
): Conditions | undefined {
  if (ifs.length === 0 && when === undefined) return undefined;
  if (when !== undefined) {
    if (ifs.length > 0) throw new UsageError('use either --if or --when, not both');
    try {
      return JSON.parse(when) as Conditions;
    } catch {
      throw new UsageError('--when expects a JSON object such as {"ip":["10.0.0.0/8"]}');
    }
  }
  const ip: string[] = [];
  const country: string[] = [];
  const claims: Record<string, string | number | boolean | (string | number | boolean)[]> = {};
  const time: { days?: Weekday[]; hours?: { from: string; to: string }; timezone?: string } = {};
  for (const entry of ifs) {
    const eq = entry.indexOf('=');
    if (eq <= 0) throw new UsageError(`--if ${entry}: expected key=value`);
    const key = entry.slice(0, eq);
    const value = entry.slice(eq + 1);
    if (value === '') throw new UsageError(`--if ${entry}: empty value`);
    if (key === 'ip') ip.push(...value.split(','));
    else if (key === 'country') country.push(...value.split(','));
    else if (key === 'days') time.days = parseDays(value);
    else if (key === 'tz' || key === 'timezone') time.timezone = value;
    else if (key === 'time') {
      const hours = /^(\d{2}:\d{2})-(\d{2}:\d{2})$/.exec(value);
      if (!hours) throw new UsageError(`--if time=${value}: expected HH:MM-HH:MM`);
      time.hours = { from: hours[1]!, to: hours[2]! };
    } else if (key.startsWith('claim.') && key.length > 6) {
      const values = value.split(',').map(scalar);
      claims[key.slice(6)] = values.length === 1 ? values[0]! : values;
    } else {
      throw new UsageError(
        `--if ${key}: expected one of ip, country, time, days, tz, claim.<name>`,
      );
    }
  }
  const out: {
    ip?: string[];
    country?: string[];
    claims?: typeof claims;
    time?: typeof time;
  } = {};
  if (ip.length > 0) out.ip = ip;
  if (country.length > 0) out.country = country;
  if (Object.keys(claims).length > 0) out.claims = claims;
  if (Object.keys(time).length > 0) out.time = time;
  return out;
}

function grantFrom(parsed: ParsedArgs, permission: string, nowMs: number): Grant {
  const expires = stringOption(parsed, 'expires');
  const when = parseConditions(listOption(parsed, 'if'), stringOption(parsed, 'when'));
  return {
    permission,
    ...(expires !== undefined && { expiresAt: parseExpiry(expires, nowMs) }),
    ...(when !== undefined && { when }),
  };
}

function secretNames(doc: unknown): string[] {
  const issuers = (doc as { issuers?: unknown })?.issuers;
  if (!Array.isArray(issuers)) return [];
  return issuers
    .map((i) => (i as { keys?: { secretEnv?: unknown } })?.keys?.secretEnv)
    .filter((name): name is string => typeof name === 'string');
}

/**
 * The policy, compiled as the edges compile it. Secrets it names come from the environment or
 * the dotenv file. Commands that never verify a token (grant, show, ...) only need the roles:
 * for them a missing secret is filled with a random value nobody knows, rather than refusing.
 */
async function loadPolicy(
  io: CliIo,
  parsed: ParsedArgs,
  needsKeys: boolean,
): Promise<CompiledPolicy> {
  const config = stringOption(parsed, 'config') ?? 'wrangler.toml';
  const file =
    stringOption(parsed, 'policy') ??
    io.env.GATEHOUSE_POLICY ??
    (await configuredPolicyFile(io.readFile, config));
  const text = await io.readFile(file);
  if (text === null) throw new UsageError(`cannot read the policy ${file} (use --policy)`);
  const varsFile = stringOption(parsed, 'vars') ?? devVarsBeside(config);
  const vars = await io.readFile(varsFile);
  const env: Record<string, string | undefined> = {
    ...(vars === null ? {} : parseDotenv(vars)),
    ...io.env,
  };
  const doc = parsePolicyText(text, file);
  for (const name of secretNames(doc)) {
    if (env[name]) continue;
    if (needsKeys) {
      throw new UsageError(
        `${name} (named by the policy) is not set and ${varsFile} has none: run \`npm start\` once, or export it`,
      );
    }
    const bytes = new Uint8Array(32);
    crypto.getRandomValues(bytes);
    env[name] = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  }
  try {
    return compilePolicy(doc, { env });
  } catch (error) {
    if (error instanceof ConfigError) throw new UsageError(`${file}: ${error.message}`);
    throw error;
  }
}

function targetOptions(parsed: ParsedArgs): TargetOptions {
  const kv = stringOption(parsed, 'kv');
  const dynamodb = flag(parsed, 'dynamodb');
  if (kv !== undefined && kv !== 'local' && kv !== 'remote') {
    throw new UsageError('--kv expects local or remote');
  }
  if (kv !== undefined && dynamodb) throw new UsageError('use either --kv or --dynamodb');
  const table = stringOption(parsed, 'table');
  if (dynamodb && table === undefined) throw new UsageError('--dynamodb needs --table <name>');
  if (!dynamodb && (table ?? stringOption(parsed, 'endpoint')) !== undefined) {
    throw new UsageError('--table and --endpoint go with --dynamodb');
  }
  const pick = (name: string) => stringOption(parsed, name);
  return {
    kind: dynamodb ? 'dynamodb' : kv === 'remote' ? 'kv-remote' : 'kv-local',
    ...(table !== undefined && { table }),
    ...(pick('endpoint') !== undefined && { endpoint: pick('endpoint')! }),
    ...(pick('region') !== undefined && { region: pick('region')! }),
    ...(pick('persist-to') !== undefined && { persistTo: pick('persist-to')! }),
    ...(pick('config') !== undefined && { config: pick('config')! }),
    ...(pick('binding') !== undefined && { binding: pick('binding')! }),
  };
}

function retentionDays(parsed: ParsedArgs, io: CliIo): number | undefined {
  const text = stringOption(parsed, 'retention-days') ?? io.env.AUDIT_RETENTION_DAYS;
  if (text === undefined || text === '') return undefined;
  const days = Number(text);
  if (!/^\d{1,4}$/.test(text) || days < 1 || days > 3650) {
    throw new UsageError(
      '--retention-days (or AUDIT_RETENTION_DAYS) expects whole days from 1 to 3650',
    );
  }
  return days;
}

/**
 * `MAX_RECORD_ENTRIES` from the environment: the bound changes must respect; set it to the
 * edges' `maxRecordEntries` when that is not the default (10000).
 */
function maxRecordEntries(io: CliIo): number | undefined {
  const text = io.env.MAX_RECORD_ENTRIES;
  if (text === undefined || text === '') return undefined;
  const entries = Number(text);
  if (!/^\d{1,7}$/.test(text) || entries < 1 || entries > 1_000_000) {
    throw new UsageError('MAX_RECORD_ENTRIES expects a whole number from 1 to 1000000');
  }
  return entries;
}

interface Session {
  readonly admin: Admin;
  readonly policy: CompiledPolicy;
  readonly gatehouse: () => Gatehouse;
  readonly description: string;
}

/** Opens policy and target, runs `fn`, and always closes the target. */
async function withSession(
  parsed: ParsedArgs,
  io: CliIo,
  options: { needsKeys?: boolean },
  fn: (session: Session) => Promise<number>,
): Promise<number> {
  const target = targetOptions(parsed);
  const policy = await loadPolicy(io, parsed, options.needsKeys ?? false);
  const days = retentionDays(parsed, io);
  const maxEntries = maxRecordEntries(io);
  const actor =
    stringOption(parsed, 'actor') ?? io.env.GATEHOUSE_ACTOR ?? `cli:${io.env.USER ?? 'unknown'}`;
  const opened = await openTarget(target, io);
  try {
    const admin = new PermissionAdmin({
      store: opened.admin,
      policyRoles: policy.roles,
      actor,
      via: 'cli',
      ...(days !== undefined && { auditRetentionDays: days }),
      ...(maxEntries !== undefined && { maxRecordEntries: maxEntries }),
      ...(opened.feed !== undefined && { feed: opened.feed }),
      now: () => io.now(),
    });
    let gatehouse: Gatehouse | undefined;
    return await fn({
      admin,
      policy,
      description: opened.description,
      gatehouse: () => {
        gatehouse ??= new Gatehouse({ policy, store: opened.reader, now: () => io.now() });
        return gatehouse;
      },
    });
  } finally {
    await opened.close();
  }
}

function print(io: CliIo, parsed: ParsedArgs, value: unknown, text: () => string): void {
  io.out(flag(parsed, 'json') ? JSON.stringify(value, null, 2) : text());
}

function who(key: SubjectKey): string {
  return key.tenant === undefined ? key.subject : `${key.subject} (tenant ${key.tenant})`;
}

function changeCommand(
  summary: string,
  usage: string,
  options: OptionSpecs,
  run: (
    admin: Admin,
    key: SubjectKey,
    name: string,
    parsed: ParsedArgs,
    now: number,
  ) => ReturnType<Admin['grant']>,
  past: (key: SubjectKey, name: string) => string,
  nameLabel = 'permission',
): Command {
  return {
    summary,
    usage,
    options,
    async run(parsed, io) {
      const subject = positional(parsed, 0, 'subject');
      const name = positional(parsed, 1, nameLabel);
      expectPositionals(parsed, 2);
      const key = subjectKey(parsed, subject);
      return withSession(parsed, io, {}, async ({ admin, description }) => {
        const result = await run(admin, key, name, parsed, io.now());
        // The consistency token for the check API (read your writes), when the target has a feed.
        const epoch = admin.epoch;
        print(io, parsed, epoch === undefined ? result : { ...result, epoch }, () =>
          result.changed
            ? `${past(key, name)} [${description}]`
            : `unchanged: ${past(key, name)} already [${description}]`,
        );
        return 0;
      });
    },
  };
}

const GRANT_OPTIONS: OptionSpecs = {
  expires: { value: true },
  if: { value: true, repeat: true },
  when: { value: true },
};

const CONDITION_USAGE = `  --expires <when>       2h, 30m, 7d, 2w from now; an ISO time with zone; or Unix seconds
  --if <key=value>       a condition; repeatable, all must hold:
                           ip=10.0.0.0/8[,CIDR]   country=DE[,FR]   time=09:00-17:00
                           days=mon-fri           tz=Europe/Berlin  claim.<name>=<value>
  --when <json>          conditions as JSON (the policy's "when" shape) instead of --if`;

// ---------------------------------------------------------------------------------------------
// Commands

const grant = changeCommand(
  'grant a permission to a subject',
  `Usage: gatehouse grant <subject> <permission> [options]

Grants <permission> (such as read:posts, write:posts:*) directly to <subject>. The same
permission with the same conditions is replaced (a new expiry); other conditions add a grant.

${CONDITION_USAGE}

${COMMON_USAGE}`,
  GRANT_OPTIONS,
  (admin, key, permission, parsed, now) => admin.grant(key, grantFrom(parsed, permission, now)),
  (key, p) => `granted ${p} to ${who(key)}`,
);

const revoke = changeCommand(
  'remove a direct grant',
  `Usage: gatehouse revoke <subject> <permission> [options]

Removes every direct grant of <permission> (whatever its conditions). Permissions that come
from a role are removed with \`unassign\`, or blocked with \`deny\`.

${COMMON_USAGE}`,
  {},
  (admin, key, permission) => admin.revoke(key, permission),
  (key, p) => `revoked ${p} from ${who(key)}`,
);

const deny = changeCommand(
  'deny a permission (wins over every grant)',
  `Usage: gatehouse deny <subject> <permission> [options]

Denies <permission> to <subject>: a deny wins over every grant, direct or from a role. A deny
whose condition cannot be evaluated applies.

${CONDITION_USAGE}

${COMMON_USAGE}`,
  GRANT_OPTIONS,
  (admin, key, permission, parsed, now) => admin.deny(key, grantFrom(parsed, permission, now)),
  (key, p) => `denied ${p} to ${who(key)}`,
);

const undeny = changeCommand(
  'remove a direct deny',
  `Usage: gatehouse undeny <subject> <permission> [options]

${COMMON_USAGE}`,
  {},
  (admin, key, permission) => admin.undeny(key, permission),
  (key, p) => `removed the deny of ${p} from ${who(key)}`,
);

const assign = changeCommand(
  'assign a role to a subject',
  `Usage: gatehouse assign <subject> <role> [options]

Assigns a role defined in the policy or the store (\`gatehouse role put\`).

  --expires <when>       2h, 30m, 7d, 2w from now; an ISO time with zone; or Unix seconds

${COMMON_USAGE}`,
  { expires: { value: true } },
  (admin, key, role, parsed, now) => {
    const expires = stringOption(parsed, 'expires');
    return admin.assign(key, role, expires === undefined ? undefined : parseExpiry(expires, now));
  },
  (key, role) => `assigned ${role} to ${who(key)}`,
  'role',
);

const unassign = changeCommand(
  'remove a role assignment',
  `Usage: gatehouse unassign <subject> <role> [options]

${COMMON_USAGE}`,
  {},
  (admin, key, role) => admin.unassign(key, role),
  (key, role) => `unassigned ${role} from ${who(key)}`,
  'role',
);

const ROLE_USAGE = `Usage: gatehouse role put <role> [--grant <p>]... [--deny <p>]... [--inherits <role>]...
       gatehouse role rm <role>
       gatehouse role list

Store roles (per tenant) beside the policy's roles; a store role named like a policy role
replaces it for that tenant. \`put\` replaces the whole definition.

  --grant <permission>   a permission the role grants; repeatable
  --deny <permission>    a permission the role denies; repeatable
  --inherits <role>      a role whose permissions this role also has; repeatable

${COMMON_USAGE}`;

const role: Command = {
  summary: 'define, remove or list store roles',
  usage: ROLE_USAGE,
  options: {
    grant: { value: true, repeat: true },
    deny: { value: true, repeat: true },
    inherits: { value: true, repeat: true },
  },
  async run(parsed, io) {
    const action = positional(parsed, 0, 'put|rm|list');
    const tenant = stringOption(parsed, 'tenant');
    if (action === 'list') {
      expectPositionals(parsed, 1);
      return withSession(parsed, io, {}, async ({ admin, policy }) => {
        const stored = await admin.listRoles(tenant);
        print(io, parsed, { store: stored, policy: policy.roles }, () =>
          [
            ...stored.map((r) => `store   ${r.name}: ${describeRole(r)}`),
            ...policy.roles.map((r) => `policy  ${r.name}: ${describeRole(r)}`),
          ].join('\n'),
        );
        return 0;
      });
    }
    const name = positional(parsed, 1, 'role');
    expectPositionals(parsed, 2);
    if (action === 'put') {
      const record = {
        name,
        grants: listOption(parsed, 'grant').map((permission) => ({ permission })),
        denies: listOption(parsed, 'deny').map((permission) => ({ permission })),
        inherits: [...listOption(parsed, 'inherits')],
      };
      return withSession(parsed, io, {}, async ({ admin, description }) => {
        const result = await admin.putRole(tenant, record);
        print(io, parsed, result, () =>
          result.changed ? `put role ${name} [${description}]` : `unchanged: role ${name}`,
        );
        return 0;
      });
    }
    if (action === 'rm') {
      for (const option of ['grant', 'deny', 'inherits']) {
        if (listOption(parsed, option).length > 0)
          throw new UsageError(`--${option} goes with put`);
      }
      return withSession(parsed, io, {}, async ({ admin, description }) => {
        const result = await admin.removeRole(tenant, name);
        print(io, parsed, result, () => `removed role ${name} [${description}]`);
        return 0;
      });
    }
    throw new UsageError(`unknown action ${action}; expected put, rm or list`);
  },
};

function describeRole(r: {
  grants: readonly Grant[];
  denies?: readonly Grant[];
  inherits: readonly string[];
}): string {
  const parts = [
    r.grants.length > 0 ? `grants ${r.grants.map((g) => g.permission).join(', ')}` : '',
    r.denies && r.denies.length > 0 ? `denies ${r.denies.map((g) => g.permission).join(', ')}` : '',
    r.inherits.length > 0 ? `inherits ${r.inherits.join(', ')}` : '',
  ].filter(Boolean);
  return parts.length === 0 ? '(nothing)' : parts.join('; ');
}

function describeVia(via: 'direct' | 'claims' | readonly string[]): string {
  return typeof via === 'string' ? via : `role ${via.join(' → ')}`;
}

const show: Command = {
  summary: "a subject's effective permissions and where each comes from",
  usage: `Usage: gatehouse show <subject> [options]

Lists every grant and deny that applies to <subject>: direct, or through which role path,
with its expiry and conditions. Expired entries the store still holds are marked.

${COMMON_USAGE}`,
  async run(parsed, io) {
    const subject = positional(parsed, 0, 'subject');
    expectPositionals(parsed, 1);
    const key = subjectKey(parsed, subject);
    return withSession(parsed, io, {}, async ({ admin, description }) => {
      const result = await admin.show(key);
      print(io, parsed, result, () => {
        if (result.record === null && result.effective.length === 0) {
          return `${who(key)}: no record in ${description} (no permissions)`;
        }
        const lines = [`${who(key)} [${description}]`];
        for (const e of result.effective) {
          const extra = [
            e.expiresAt === undefined
              ? ''
              : `${e.expired ? 'EXPIRED' : 'until'} ${new Date(e.expiresAt * 1000).toISOString()}`,
            e.when === undefined ? '' : `when ${JSON.stringify(e.when)}`,
          ].filter(Boolean);
          lines.push(
            `  ${e.effect === 'deny' ? 'deny ' : 'allow'} ${e.permission.padEnd(24)} ${describeVia(e.via)}${extra.length > 0 ? `  ${extra.join('  ')}` : ''}`,
          );
        }
        for (const w of result.warnings) lines.push(`  warning: ${w}`);
        return lines.join('\n');
      });
      return 0;
    });
  },
};

const check: Command = {
  summary: 'the decision the edges make for a request, with --explain the trace',
  usage: `Usage: gatehouse check (--token <jwt> | --subject <s>) <METHOD> <path> [options]

Decides the request as the edges do (same policy, same store). Exit code 0 when allowed, 1
when denied. With --subject there is no token: claim conditions are unknown.

  --token <jwt>          decide with this bearer token (verified; the policy's secrets from --vars)
  --subject <s>          decide for a subject without a token
  --ip <address>         client IP for ip conditions
  --country <CC>         client country for country conditions
  --explain              the trace: route, required permissions, each grant considered and why

${COMMON_USAGE}`,
  options: {
    token: { value: true },
    subject: { value: true },
    ip: { value: true },
    country: { value: true },
    explain: {},
  },
  async run(parsed, io) {
    const method = positional(parsed, 0, 'METHOD');
    const path = positional(parsed, 1, 'path');
    expectPositionals(parsed, 2);
    const token = stringOption(parsed, 'token');
    const subject = stringOption(parsed, 'subject');
    if ((token === undefined) === (subject === undefined)) {
      throw new UsageError('give exactly one of --token or --subject');
    }
    const tenant = stringOption(parsed, 'tenant');
    const ip = stringOption(parsed, 'ip');
    const country = stringOption(parsed, 'country');
    return withSession(parsed, io, { needsKeys: token !== undefined }, async (session) => {
      const result = await explainRequest(
        session.gatehouse(),
        {
          ...(token !== undefined ? { token } : { subject: subject! }),
          ...(tenant !== undefined && { tenant }),
          method,
          path,
          ...(ip !== undefined && { ip }),
          ...(country !== undefined && { country }),
        },
        () => io.now(),
      );
      const explain = flag(parsed, 'explain');
      print(io, parsed, explain ? result : result.answer, () =>
        explain
          ? formatExplain(result)
          : `${result.answer.allow ? 'ALLOW' : 'DENY'} ${result.answer.status} ${result.answer.reason}: ${result.answer.explain}`,
      );
      return result.answer.allow ? 0 : 1;
    });
  },
};

/** Reports progress at most every 10% (and at the end), so big files stay readable. */
function progressReporter(
  io: CliIo,
  verb: string,
): (done: number, total: number | undefined) => void {
  let lastTenth = -1;
  return (done, total) => {
    // A total unknown until the end (a DynamoDB scan): a line every 1,000 records.
    if (total === undefined) {
      if (done % 1000 === 0) (io.progress ?? io.err)(`${verb} ${done} records`);
      return;
    }
    if (total < 200) return;
    const tenth = Math.floor((done / total) * 10);
    if (tenth === lastTenth && done !== total) return;
    lastTenth = tenth;
    (io.progress ?? io.err)(
      `${verb} ${done}/${total} records (${Math.floor((done / total) * 100)}%)`,
    );
  };
}

const importCommand: Command = {
  summary: 'write a permission data file (the seed file shape) into the store',
  usage: `Usage: gatehouse import <file> [options]

Validates the whole file first (every mistake names its path; nothing is written on a mistake),
then writes it: each subject and each tenant's role set in the file replaces the stored one.
Records that did not change are not written. Each changed subject and role is
audited (before and after), and one more record summarises the import.

  --replace              also delete subjects and role sets the file does not have
  --dry-run              make every check the import makes (against the store, with
                         --replace if given), count what it would write, write nothing

${COMMON_USAGE}`,
  options: { replace: {}, 'dry-run': {} },
  async run(parsed, io) {
    const file = positional(parsed, 0, 'file');
    expectPositionals(parsed, 1);
    const text = file === '-' ? await io.readStdin?.() : await io.readFile(file);
    if (text === null || text === undefined) throw new UsageError(`cannot read ${file}`);
    return withSession(parsed, io, {}, async ({ admin, description }) => {
      const dryRun = flag(parsed, 'dry-run');
      // The dry run is the import itself, stopped before the first write: it makes every check.
      const result = await admin.importData(text, {
        source: file,
        replace: flag(parsed, 'replace'),
        dryRun,
        ...(!dryRun && { progress: progressReporter(io, 'imported') }),
      });
      if (dryRun) {
        print(
          io,
          parsed,
          result,
          () =>
            `${file} is valid: ${result.users} subjects, ${result.roles} roles; ` +
            `would write ${result.written} records, delete ${result.deleted} (nothing written)`,
        );
        return 0;
      }
      print(
        io,
        parsed,
        result,
        () =>
          `imported ${file} into ${description}: ${result.users} subjects, ${result.roles} roles; ` +
          `${result.written} records written, ${result.deleted} deleted`,
      );
      return 0;
    });
  },
};

const exportCommand: Command = {
  summary: 'print the whole permission data set as JSON (what import reads)',
  usage: `Usage: gatehouse export [options] > permissions.json

${COMMON_USAGE}`,
  async run(parsed, io) {
    expectPositionals(parsed, 0);
    return withSession(parsed, io, {}, async ({ admin }) => {
      const data = await admin.exportData(progressReporter(io, 'read'));
      io.out(JSON.stringify(data, null, 2));
      return 0;
    });
  },
};

function parseSince(text: string, nowMs: number): number {
  const since = parseSinceText(text, nowMs);
  if (since === null) {
    throw new UsageError('--since expects a duration (1h, 1d, 30d) or an ISO date/time');
  }
  return since;
}

function auditLine(r: AuditRecord): string {
  const target = [
    r.target.tenant === undefined ? '' : `tenant ${r.target.tenant}`,
    r.target.subject === undefined ? '' : `subject ${r.target.subject}`,
    r.target.role === undefined ? '' : `role ${r.target.role}`,
  ]
    .filter(Boolean)
    .join(' ');
  return `${r.time}  ${r.actor.padEnd(20)} ${r.operation.padEnd(9)} ${target || '(data set)'}\n    before ${JSON.stringify(r.before)}\n    after  ${JSON.stringify(r.after)}`;
}

const audit: Command = {
  summary: 'list audit records (who changed what, when, before and after)',
  usage: `Usage: gatehouse audit [options]

Most recent first. Records are kept for the retention period (AUDIT_RETENTION_DAYS, default 90).

  --subject <s>          only changes to this subject
  --role <r>             only changes to this role
  --since <when>         1h, 1d, 30d ago, or an ISO date/time (default 7d)
  --limit <n>            at most n records (default 100)

${COMMON_USAGE}`,
  options: {
    subject: { value: true },
    role: { value: true },
    since: { value: true },
    limit: { value: true },
  },
  async run(parsed, io) {
    expectPositionals(parsed, 0);
    const since = parseSince(stringOption(parsed, 'since') ?? '7d', io.now());
    const limitText = stringOption(parsed, 'limit') ?? '100';
    if (!/^\d{1,5}$/.test(limitText) || Number(limitText) < 1) {
      throw new UsageError('--limit expects a number from 1 to 99999');
    }
    const subject = stringOption(parsed, 'subject');
    const roleName = stringOption(parsed, 'role');
    const tenant = stringOption(parsed, 'tenant');
    return withSession(parsed, io, {}, async ({ admin }) => {
      const records = await admin.audit({
        since,
        limit: Number(limitText),
        ...(subject !== undefined && { subject }),
        ...(roleName !== undefined && { role: roleName }),
        ...(tenant !== undefined && { tenant }),
      });
      print(io, parsed, records, () =>
        records.length === 0 ? 'no audit records' : records.map(auditLine).join('\n'),
      );
      return 0;
    });
  },
};

const revokeSessions: Command = {
  summary: 'sign a subject out everywhere (refuse every token issued before now)',
  usage: `Usage: gatehouse revoke-sessions <subject> [options]

Refuses every token of <subject> issued before now, on every edge following the revocation feed
(reason session_revoked), within about a second. Tokens issued afterwards work. Grants are kept.
Needs a target with a revocation feed (--dynamodb; --kv local with \`npm start\` running).

${COMMON_USAGE}`,
  options: {},
  async run(parsed, io) {
    const subject = positional(parsed, 0, 'subject');
    expectPositionals(parsed, 1);
    const key = subjectKey(parsed, subject);
    return withSession(parsed, io, {}, async ({ admin, description }) => {
      const result = await admin.revokeSessions(key);
      print(
        io,
        parsed,
        result,
        () =>
          `signed ${who(key)} out everywhere: tokens issued before ${new Date(
            (result.notBefore ?? 0) * 1000,
          ).toISOString()} are refused (epoch ${result.epoch}) [${description}]`,
      );
      return 0;
    });
  },
};

const revokeToken: Command = {
  summary: 'revoke one Gatehouse-issued token by its jti',
  usage: `Usage: gatehouse revoke-token <jti> --expires <when> [options]

Refuses the token with this id (its jti claim) on every edge following the revocation feed
(reason token_revoked), within about a second, until --expires: the token's own exp, after which
it is refused anyway (at most a year).

  --expires <when>       the token's exp: 2h, 7d from now; an ISO time with zone; or Unix seconds

${COMMON_USAGE}`,
  options: { expires: { value: true } },
  async run(parsed, io) {
    const jti = positional(parsed, 0, 'jti');
    expectPositionals(parsed, 1);
    const expires = stringOption(parsed, 'expires');
    if (expires === undefined) throw new UsageError("--expires: expected the token's exp");
    const expiresAt = parseExpiry(expires, io.now());
    return withSession(parsed, io, {}, async ({ admin, description }) => {
      const result = await admin.revokeToken(jti, expiresAt);
      print(
        io,
        parsed,
        { jti, expiresAt, ...result },
        () =>
          `revoked token ${jti} until ${new Date(expiresAt * 1000).toISOString()} (epoch ${result.epoch}) [${description}]`,
      );
      return 0;
    });
  },
};

export const MANAGE_COMMANDS: Readonly<Record<string, Command>> = {
  grant,
  revoke,
  deny,
  undeny,
  assign,
  unassign,
  'revoke-sessions': revokeSessions,
  'revoke-token': revokeToken,
  role,
  show,
  check,
  import: importCommand,
  export: exportCommand,
  audit,
};

/** Parses with the command's options plus the common ones; `--help` prints the usage. */
export async function runManageCommand(
  command: Command,
  args: readonly string[],
  io: CliIo,
): Promise<number> {
  const parsed = parseArgs(args, { ...COMMON_OPTIONS, ...command.options });
  if (flag(parsed, 'help')) {
    io.out(command.usage);
    return 0;
  }
  try {
    return await command.run(parsed, io);
  } catch (error) {
    if (error instanceof AdminError) {
      if (flag(parsed, 'json')) {
        // Scripts get the same facts as a JSON line on stderr: code, field, message.
        io.err(
          JSON.stringify({
            error: { code: error.code, field: error.field ?? null, message: error.message },
          }),
        );
      } else {
        const where = error.field === undefined ? '' : ` [${error.field}]`;
        io.err(`${error.message}${where}`);
      }
      // A record that would outgrow its bound is an input to change, like a bad one.
      return error.code === 'invalid_request' || error.code === 'record_too_large' ? 2 : 1;
    }
    throw error;
  }
}
