/**
 * Permission grammar: `action:resource[:qualifier...]`, e.g. `read:posts`, `delete:posts:42`.
 * `*` is a whole-segment wildcard allowed only in grants and denies; see {@link permissionMatches}
 * for what it matches.
 */

import { ConfigError } from '../errors.ts';

/** Longest permission string accepted, in UTF-16 code units; bounds trie depth and log size. */
export const MAX_PERMISSION_LENGTH = 512;
/** Most segments a permission may have; bounds the work of one check. */
export const MAX_PERMISSION_SEGMENTS = 16;
/** Longest single segment, in characters. */
export const MAX_SEGMENT_LENGTH = 128;

/** Options for parsing a permission string. */
export interface PermissionSyntaxOptions {
  /** Accept `*` as a whole segment (grants and denies only). Default false: required permissions. */
  readonly allowWildcards?: boolean;
}

const EXPECTED = 'expected a permission like read:posts';
const COLON = 58;
const STAR = 42;

// Lookup table instead of a regex: validation runs on the check path for every required permission.
const SEGMENT_CHAR = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~%@+-') {
  SEGMENT_CHAR[c.charCodeAt(0)] = 1;
}

/** Why `text` is not a permission, or undefined when it is one. */
function syntaxProblem(text: unknown, allowWildcards: boolean): string | undefined {
  if (typeof text !== 'string') return 'not a string';
  if (text.length === 0) return 'empty';
  if (text.length > MAX_PERMISSION_LENGTH) return `longer than ${MAX_PERMISSION_LENGTH} characters`;
  if (text === '*') return allowWildcards ? undefined : 'wildcard not allowed here';
  let segments = 1;
  let start = 0;
  for (let i = 0; i <= text.length; i++) {
    const code = i === text.length ? COLON : text.charCodeAt(i);
    if (code === COLON) {
      const length = i - start;
      if (length === 0) return `segment ${segments} is empty`;
      if (length > MAX_SEGMENT_LENGTH)
        return `segment ${segments} is longer than ${MAX_SEGMENT_LENGTH}`;
      if (i < text.length) {
        segments++;
        if (segments > MAX_PERMISSION_SEGMENTS) {
          return `more than ${MAX_PERMISSION_SEGMENTS} segments`;
        }
      }
      start = i + 1;
    } else if (code === STAR) {
      if (!allowWildcards) return 'wildcard not allowed here';
      const next = i + 1 === text.length ? COLON : text.charCodeAt(i + 1);
      if (i !== start || next !== COLON) return '* must be a whole segment';
    } else if (code >= 128 || SEGMENT_CHAR[code] !== 1) {
      return `segment ${segments} has a character outside [A-Za-z0-9._~%@+-]`;
    }
  }
  if (segments < 2) return 'needs at least action:resource';
  return undefined;
}

/** Whether `text` is a well-formed permission; wildcards only with `allowWildcards`. */
export function isValidPermission(text: string, options?: PermissionSyntaxOptions): boolean {
  return syntaxProblem(text, options?.allowWildcards === true) === undefined;
}

/**
 * Why `text` is not a well-formed permission, or undefined when it is. For callers that report
 * store problems as warnings rather than exceptions.
 */
export function permissionProblem(
  text: string,
  options?: PermissionSyntaxOptions,
): string | undefined {
  return syntaxProblem(text, options?.allowWildcards === true);
}

/**
 * Splits a permission into its segments. Throws {@link ConfigError} with field `permission`
 * when malformed; use {@link assertPermission} to name the real field.
 */
export function parsePermission(
  text: string,
  options?: PermissionSyntaxOptions,
): readonly string[] {
  return assertPermission(text, 'permission', options);
}

/**
 * Like {@link parsePermission}, but the ConfigError names `field` (e.g. `roles.editor.grants[0]`)
 * so a policy mistake points at the line to fix.
 */
export function assertPermission(
  text: string,
  field: string,
  options?: PermissionSyntaxOptions,
): readonly string[] {
  const problem = syntaxProblem(text, options?.allowWildcards === true);
  if (problem !== undefined) throw new ConfigError(field, `${EXPECTED} (${problem})`);
  return text.split(':');
}

/**
 * The reference semantics of a grant, kept simple so property tests can use it as the oracle
 * for the compiled matcher. `*` matches exactly one segment, except as the last segment of a
 * grant, where it matches one or more remaining segments (so `*` alone matches everything).
 * Malformed inputs never match.
 */
export function permissionMatches(grant: string, required: string): boolean {
  if (!isValidPermission(grant, { allowWildcards: true }) || !isValidPermission(required)) {
    return false;
  }
  const g = grant.split(':');
  const r = required.split(':');
  for (let i = 0; i < g.length; i++) {
    const segment = g[i];
    if (segment === '*' && i === g.length - 1) return r.length > i;
    if (i >= r.length) return false;
    if (segment !== '*' && segment !== r[i]) return false;
  }
  return g.length === r.length;
}
