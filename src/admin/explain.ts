/**
 * The explain check: the decision an edge would make for a request, with the trace behind it
 * (route matched, required permissions, every grant and deny considered, and why each did or did
 * not apply). `gatehouse check --explain` and the admin API's POST /check print this.
 *
 * The answer comes from the same code the edges run (runCheck → Gatehouse.decide / check), so it
 * cannot drift from them; the trace is computed beside it from the same records and is
 * informational. Neither contains the token or the principal's claim values.
 */

import { AdminError, TokenError } from '../errors.ts';
import { type ConditionInput, compileConditions } from '../permissions/conditions.ts';
import { isValidPermission, permissionMatches } from '../permissions/grammar.ts';
import { compilePermissions, type PermissionSet } from '../permissions/permission-set.ts';
import { compileRoles } from '../permissions/roles.ts';
import {
  CHECK_ISSUER,
  type CheckAnswer,
  type CheckItem,
  runCheck,
  subjectPrincipal,
} from '../policy/check.ts';
import type { Gatehouse } from '../policy/decide.ts';
import { fillTemplate } from '../policy/routes.ts';
import { ClaimsStore } from '../stores/claims.ts';
import { subjectStorageKey } from '../stores/keys.ts';
import type { Conditions, PermissionMatch, Principal, SubjectKey } from '../types.ts';

export interface ExplainInput {
  /** A bearer token: decided exactly as the edge would, claims and all. */
  readonly token?: string;
  /** Or a subject without a token: claim conditions are then unknown (grants off, denies on). */
  readonly subject?: string;
  readonly tenant?: string;
  readonly method: string;
  readonly path: string;
  readonly ip?: string;
  readonly country?: string;
}

/** Why one grant or deny did or did not take part in the answer. */
export type GrantOutcome =
  | 'applies'
  | 'expired'
  | 'condition_false'
  | 'condition_unknown'
  | 'shadowed';

export interface ConsideredGrant {
  readonly permission: string;
  readonly effect: 'allow' | 'deny';
  readonly via: PermissionMatch['via'];
  readonly expiresAt?: number;
  readonly when?: Conditions;
  readonly outcome: GrantOutcome;
  /** One line, without claim values: `ip: 203.0.113.7 is outside 10.0.0.0/8`. */
  readonly why: string;
}

export interface RequiredTrace {
  readonly required: string;
  /** What the permission set answered for this permission. */
  readonly result: 'allow' | 'deny' | 'none';
  /** Grants and denies whose pattern covers the permission. */
  readonly considered: readonly ConsideredGrant[];
}

export interface ExplainTrace {
  readonly principal?: {
    readonly subject: string;
    readonly tenant?: string;
    readonly issuer: string;
  };
  readonly route?: string;
  readonly routeKind?: 'public' | 'authenticated' | 'all' | 'any';
  readonly required: readonly string[];
  readonly permissions: readonly RequiredTrace[];
  /** Grants and denies that cover none of the required permissions (`permission (via)`). */
  readonly notCovering: readonly string[];
  /** Store grants the edges skip, assignments of unknown roles. */
  readonly warnings: readonly string[];
  /** What the trace could not look at, and why. */
  readonly notes: readonly string[];
}

export interface ExplainResult {
  readonly answer: CheckAnswer;
  readonly trace: ExplainTrace;
}

const MAX_TEXT = 4096;

function text(value: unknown, field: string, what: string): string {
  if (typeof value !== 'string' || value.length === 0 || value.length > MAX_TEXT) {
    throw new AdminError('invalid_request', `${field}: expected ${what}`, { field });
  }
  return value;
}

function checkInput(input: ExplainInput): void {
  const hasToken = input.token !== undefined;
  const hasSubject = input.subject !== undefined;
  if (hasToken === hasSubject) {
    throw new AdminError('invalid_request', 'expected exactly one of token or subject', {
      field: hasToken ? 'subject' : 'token',
    });
  }
  if (hasToken) text(input.token, 'token', 'a JWT');
  if (hasSubject) text(input.subject, 'subject', 'a subject');
  if (input.tenant !== undefined) {
    if (hasToken) {
      throw new AdminError('invalid_request', 'tenant: a token names its own tenant', {
        field: 'tenant',
      });
    }
    text(input.tenant, 'tenant', 'a tenant');
  }
  if (!/^[A-Za-z]{1,16}$/.test(text(input.method, 'method', 'an HTTP method'))) {
    throw new AdminError('invalid_request', 'method: expected an HTTP method such as GET', {
      field: 'method',
    });
  }
  if (!text(input.path, 'path', 'a path').startsWith('/')) {
    throw new AdminError('invalid_request', 'path: expected a path starting with /', {
      field: 'path',
    });
  }
  if (input.ip !== undefined) text(input.ip, 'ip', 'an IP address');
  if (input.country !== undefined) text(input.country, 'country', 'a country code');
}

/** The decision for `input` and the trace behind it. Throws AdminError for bad input only. */
export async function explainRequest(
  gatehouse: Gatehouse,
  input: ExplainInput,
  now: () => number = Date.now,
): Promise<ExplainResult> {
  checkInput(input);
  const context = {
    ...(input.ip !== undefined && { ip: input.ip }),
    ...(input.country !== undefined && { country: input.country }),
  };
  const item: CheckItem =
    input.token !== undefined
      ? { token: input.token, method: input.method, path: input.path, context }
      : {
          subject: input.subject!,
          ...(input.tenant !== undefined && { tenant: input.tenant }),
          method: input.method,
          path: input.path,
          context,
        };
  const answer = await runCheck(gatehouse, item, now);
  const trace = await traceRequest(gatehouse, input, now());
  return { answer, trace };
}

interface MutableTrace {
  principal?: NonNullable<ExplainTrace['principal']>;
  route?: string;
  routeKind?: NonNullable<ExplainTrace['routeKind']>;
  required: string[];
  permissions: RequiredTrace[];
  notCovering: string[];
  warnings: string[];
  notes: string[];
}

async function traceRequest(
  gatehouse: Gatehouse,
  input: ExplainInput,
  nowMs: number,
): Promise<ExplainTrace> {
  const trace: MutableTrace = {
    required: [],
    permissions: [],
    notCovering: [],
    warnings: [],
    notes: [],
  };
  const method = input.method.toUpperCase();
  const match = gatehouse.policy.routes.match(method, input.path);
  if (match === 'malformed') {
    trace.notes.push('The path is malformed or ambiguous; no route is looked up.');
    return trace;
  }
  if (match === null) {
    trace.notes.push(`No route matches ${method} ${input.path.split('?')[0]}.`);
  } else {
    trace.route = match.route.label;
    const requirement = match.route.requirement;
    trace.routeKind = requirement.kind;
    if (requirement.kind === 'all' || requirement.kind === 'any') {
      trace.required = requirement.permissions.map((t) => fillTemplate(t, match.params));
    }
  }

  let principal: Principal;
  if (input.token !== undefined) {
    try {
      principal = (await gatehouse.verifier.verify(input.token)).principal;
    } catch (error) {
      trace.notes.push(
        error instanceof TokenError
          ? `The token was refused (${error.code}); no permissions are looked up.`
          : 'The token could not be verified; no permissions are looked up.',
      );
      return trace;
    }
  } else {
    principal = subjectPrincipal(
      { subject: input.subject!, ...(input.tenant !== undefined && { tenant: input.tenant }) },
      nowMs,
    );
    trace.notes.push(
      'No token: claim conditions are unknown, so grants with them do not apply and denies do.',
    );
  }
  trace.principal = {
    subject: principal.subject,
    ...(principal.tenant !== undefined && { tenant: principal.tenant }),
    issuer: principal.issuer,
  };
  if (gatehouse.delegated(principal)) {
    // The three sets of the use-time rule; the answer line names the one that refused.
    const view = gatehouse.delegation(principal);
    const chain = principal.actors.map((a) => a.subject).join(' for ');
    trace.notes.push(
      `Delegated: ${chain} for ${principal.subject}. Allowed only where all three allow: ` +
        `${principal.subject}'s own permissions below (deny wins), the token's scope ` +
        `(${principal.scopes.join(' ')}), and each actor's ceiling` +
        ('refused' in view
          ? ' — refused now: the chain is too deep or an actor may no longer act.'
          : `: ${view.actors.map((a, i) => `${a.subject} ${view.standing === a ? '(standing grants)' : (view.ceilings[i] ?? []).join(' ')}`).join('; ')}.`),
    );
  }
  if (trace.required.length === 0) return trace;

  let set: PermissionSet;
  try {
    set = await permissionSet(gatehouse, principal, nowMs);
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    trace.notes.push(
      `The permissions could not be read (${typeof code === 'string' ? code : 'error'}).`,
    );
    return trace;
  }
  trace.warnings.push(...set.warnings);

  const conditionInput: ConditionInput = {
    now: nowMs,
    claims: principal.claims,
    ...(input.ip !== undefined && { ip: input.ip }),
    ...(input.country !== undefined && { country: input.country }),
  };
  const covering = new Set<number>();
  const entries = set.entries();
  for (const required of trace.required) {
    const result = set.check(required, conditionInput).effect;
    const considered: ConsideredGrant[] = [];
    entries.forEach((entry, i) => {
      if (!isValidPermission(required) || !permissionMatches(entry.permission, required)) return;
      covering.add(i);
      considered.push(consider(entry, conditionInput, input.token !== undefined, result));
    });
    trace.permissions.push({ required, result, considered });
  }
  entries.forEach((entry, i) => {
    if (!covering.has(i)) {
      trace.notCovering.push(
        `${entry.effect === 'deny' ? 'deny ' : ''}${entry.permission} (${via(entry.via)})`,
      );
    }
  });
  return trace;
}

/** The same records the edge would use, through the Gatehouse's own store and cache. */
async function permissionSet(
  gatehouse: Gatehouse,
  principal: Principal,
  nowMs: number,
): Promise<PermissionSet> {
  const key: SubjectKey =
    principal.tenant === undefined
      ? { subject: principal.subject }
      : { subject: principal.subject, tenant: principal.tenant };
  const store = gatehouse.store;
  if (store instanceof ClaimsStore) {
    const record = await store.getUser(key, principal);
    return compilePermissions({
      user: record && { ...record, grants: [] },
      roles: gatehouse.policy.roleGraph,
      now: nowMs,
      extraGrants: record?.grants ?? [],
      extraVia: 'claims',
      maxEntries: gatehouse.maxRecordEntries,
      source: { kind: store.kind, key: subjectStorageKey(key) },
    });
  }
  const [user, roles] = await Promise.all([
    store.lookupUser(key, principal),
    store.lookupRoles(principal.tenant),
  ]);
  return compilePermissions({
    user: user.record,
    roles: compileRoles(gatehouse.policy.roles, roles.roles),
    now: nowMs,
    maxEntries: gatehouse.maxRecordEntries,
    source: { kind: store.kind, key: subjectStorageKey(key) },
  });
}

function via(value: PermissionMatch['via']): string {
  if (value === 'direct') return 'direct';
  if (value === 'claims') return 'token claims';
  return `role ${value.join(' → ')}`;
}

const CONDITION_ORDER = ['ip', 'country', 'claims', 'time'] as const;

function consider(
  entry: ReturnType<PermissionSet['entries']>[number],
  input: ConditionInput,
  hasToken: boolean,
  result: 'allow' | 'deny' | 'none',
): ConsideredGrant {
  const base = {
    permission: entry.permission,
    effect: entry.effect,
    via: entry.via,
    ...(entry.expiresAt !== undefined && { expiresAt: entry.expiresAt }),
    ...(entry.when !== undefined && { when: entry.when }),
  };
  if (entry.expiresAt !== undefined && entry.expiresAt * 1000 <= input.now) {
    return {
      ...base,
      outcome: 'expired',
      why: `expired at ${new Date(entry.expiresAt * 1000).toISOString()}`,
    };
  }
  if (entry.when !== undefined) {
    const parts: string[] = [];
    let outcome: 'true' | 'false' | 'unknown' = 'true';
    for (const name of CONDITION_ORDER) {
      const value = entry.when[name];
      if (value === undefined) continue;
      const holds = compileConditions({ [name]: value } as Conditions, 'when')(input);
      if (holds === false) outcome = 'false';
      else if (holds === undefined && outcome === 'true') outcome = 'unknown';
      parts.push(describeCondition(name, value, holds, input, hasToken));
    }
    if (outcome !== 'true') {
      // A deny whose condition cannot be evaluated still applies (fail closed).
      const applies = outcome === 'unknown' && entry.effect === 'deny';
      return {
        ...base,
        outcome: applies
          ? 'applies'
          : outcome === 'false'
            ? 'condition_false'
            : 'condition_unknown',
        why: `${parts.join('; ')}${applies ? ' (a deny applies when it cannot be evaluated)' : ''}`,
      };
    }
    return { ...base, ...appliesOrShadowed(entry.effect, result), why: parts.join('; ') };
  }
  const applied = appliesOrShadowed(entry.effect, result);
  return {
    ...base,
    ...applied,
    why:
      applied.outcome === 'shadowed'
        ? 'a deny wins over every allow'
        : entry.effect === 'deny'
          ? 'unconditional deny'
          : 'unconditional grant',
  };
}

function appliesOrShadowed(
  effect: 'allow' | 'deny',
  result: 'allow' | 'deny' | 'none',
): { outcome: 'applies' | 'shadowed' } {
  return { outcome: effect === 'allow' && result === 'deny' ? 'shadowed' : 'applies' };
}

function describeCondition(
  name: (typeof CONDITION_ORDER)[number],
  value: unknown,
  holds: boolean | undefined,
  input: ConditionInput,
  hasToken: boolean,
): string {
  const verdict = holds === true ? 'holds' : holds === false ? 'does not hold' : 'unknown';
  switch (name) {
    case 'ip':
      return input.ip === undefined
        ? `ip ${(value as string[]).join(', ')}: unknown (no client IP)`
        : `ip ${(value as string[]).join(', ')}: ${verdict} for ${input.ip}`;
    case 'country':
      return input.country === undefined
        ? `country ${(value as string[]).join(', ')}: unknown (no country)`
        : `country ${(value as string[]).join(', ')}: ${verdict} for ${input.country}`;
    case 'claims': {
      // Claim names only: the principal's claim values never appear in explain output.
      const names = Object.keys(value as object).join(', ');
      return hasToken ? `claims ${names}: ${verdict}` : `claims ${names}: unknown (no token)`;
    }
    case 'time':
      return `time ${JSON.stringify(value)}: ${verdict} at ${new Date(input.now).toISOString()}`;
  }
}

/** Plain text for the CLI: the answer, then the trace. */
export function formatExplain(result: ExplainResult): string {
  const { answer, trace } = result;
  const lines: string[] = [
    `${answer.allow ? 'ALLOW' : 'DENY'} ${answer.status} ${answer.reason}: ${answer.explain}`,
  ];
  if (trace.principal) {
    const tenant =
      trace.principal.tenant === undefined ? '' : ` in tenant ${trace.principal.tenant}`;
    const issuer =
      trace.principal.issuer === CHECK_ISSUER ? 'no token' : `issuer ${trace.principal.issuer}`;
    lines.push(`principal  ${trace.principal.subject}${tenant} (${issuer})`);
  }
  if (trace.route) lines.push(`route      ${trace.route} (${trace.routeKind})`);
  if (trace.required.length > 0) {
    lines.push(`requires   ${trace.required.join(trace.routeKind === 'any' ? ' or ' : ' and ')}`);
  }
  for (const p of trace.permissions) {
    lines.push(`  ${p.required}: ${p.result === 'none' ? 'nothing grants it' : p.result}`);
    if (p.considered.length === 0) lines.push('    (no grant or deny covers it)');
    for (const c of p.considered) {
      const mark = c.outcome === 'applies' ? (c.effect === 'deny' ? '⛔' : '✓') : '✗';
      const expiry =
        c.expiresAt === undefined ? '' : `, until ${new Date(c.expiresAt * 1000).toISOString()}`;
      lines.push(
        `    ${mark} ${c.effect === 'deny' ? 'deny ' : ''}${c.permission} (${via(c.via)}${expiry}): ${c.outcome}, ${c.why}`,
      );
    }
  }
  if (trace.notCovering.length > 0) lines.push(`other      ${trace.notCovering.join(', ')}`);
  for (const w of trace.warnings) lines.push(`warning    ${w}`);
  for (const n of trace.notes) lines.push(`note       ${n}`);
  return lines.join('\n');
}
