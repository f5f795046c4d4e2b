/**
 * The policy the Worker runs with, as the CLI and `npm start` find it: wrangler bundles whatever
 * the `[alias]` entry `"gatehouse:policy"` of the wrangler configuration names, so local tools
 * read that same file instead of assuming the demo. Platform-free: callers pass the text.
 *
 * wrangler parses its configuration with a full TOML parser, which Gatehouse does not ship (a
 * dependency for one key); this reads the forms the key can take at the top level: the
 * `[alias]` table, an inline table `alias = { ... }`, a dotted key `alias."gatehouse:policy"`,
 * or a JSON / JSONC configuration. Anything else in the file is skipped without being
 * interpreted. test/unit/wrangler-config.test.ts checks it against wrangler's own reader.
 */
import { ConfigError } from '../errors.ts';

/** The module specifier handlers/worker.ts imports its policy from. */
export const POLICY_ALIAS = 'gatehouse:policy';

/** How errors name the entry. */
const ALIAS_FIELD = `alias["${POLICY_ALIAS}"]`;

/** What the CLI falls back to when no configuration names a policy. */
export const DEMO_POLICY = 'demo/policy.json';

/**
 * The value of `alias["gatehouse:policy"]` in a wrangler configuration's text, or undefined when
 * it has none. `file` names the configuration: `.json` / `.jsonc` files are read as JSON, others
 * as TOML. A value that is not a string is a ConfigError naming the field.
 */
export function policyAlias(text: string, file: string): string | undefined {
  const value = /\.jsonc?$/i.test(file) ? jsonAlias(text, file) : tomlAlias(text, file);
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') {
    throw new ConfigError(ALIAS_FIELD, `expected the path of a JSON policy file (in ${file})`);
  }
  return value;
}

/**
 * Where wrangler finds the aliased file: a relative path is taken from the configuration's
 * directory (wrangler resolves aliases from the project root, the directory holding the
 * configuration); an absolute one as it is. Paths use `/`; a Windows `\` is read as one.
 */
export function resolveFromConfig(configPath: string, target: string): string {
  const spec = target.replaceAll('\\', '/');
  if (!spec.startsWith('./') && !spec.startsWith('../') && !isAbsolute(spec)) {
    throw new ConfigError(
      ALIAS_FIELD,
      `expected a path starting with ./, ../ or / (in ${configPath}), not a package name`,
    );
  }
  if (isAbsolute(spec)) return normalize(spec);
  const config = configPath.replaceAll('\\', '/');
  const slash = config.lastIndexOf('/');
  const dir = slash === -1 ? '.' : config.slice(0, slash) || '/';
  return normalize(`${dir}/${spec}`);
}

/**
 * The policy file tools use by default: what `configPath` (default `wrangler.toml`) aliases, or
 * {@link DEMO_POLICY} when that file does not exist or names none.
 */
export async function configuredPolicyFile(
  readFile: (path: string) => Promise<string | null>,
  configPath = 'wrangler.toml',
): Promise<string> {
  const text = await readFile(configPath);
  if (text === null) return DEMO_POLICY;
  const alias = policyAlias(text, configPath);
  return alias === undefined ? DEMO_POLICY : resolveFromConfig(configPath, alias);
}

/** `.dev.vars` in the configuration's directory: where `wrangler dev` reads local secrets. */
export function devVarsBeside(configPath: string): string {
  const config = configPath.replaceAll('\\', '/');
  const slash = config.lastIndexOf('/');
  return slash === -1 ? '.dev.vars' : `${config.slice(0, slash + 1)}.dev.vars`;
}

// ---------------------------------------------------------------------------------------------

function isAbsolute(path: string): boolean {
  return path.startsWith('/') || /^[A-Za-z]:\//.test(path);
}

/** Removes `.` and `name/..` segments, keeping a leading `..` of a relative path. */
function normalize(path: string): string {
  const absolute = isAbsolute(path);
  const out: string[] = [];
  for (const segment of path.split('/')) {
    if (segment === '' || segment === '.') continue;
    if (segment === '..' && out.length > 0 && out[out.length - 1] !== '..') out.pop();
    else if (segment === '..' && absolute) continue;
    else out.push(segment);
  }
  const joined = out.join('/');
  if (path.startsWith('/')) return `/${joined}`;
  return joined === '' ? '.' : joined;
}

function jsonAlias(text: string, file: string): unknown {
  let doc: unknown;
  try {
    doc = JSON.parse(stripJsonComments(text));
  } catch (error) {
    throw new ConfigError(file, 'expected a JSON wrangler configuration', { cause: error });
  }
  const alias = (doc as { alias?: unknown } | null)?.alias;
  if (typeof alias !== 'object' || alias === null) return undefined;
  return Object.hasOwn(alias, POLICY_ALIAS)
    ? (alias as Record<string, unknown>)[POLICY_ALIAS]
    : undefined;
}

/** JSONC to JSON: comments and trailing commas removed, strings left alone. */
function stripJsonComments(text: string): string {
  let out = '';
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      const end = endOfBasicString(text, i);
      out += text.slice(i, end);
      i = end - 1;
    } else if (c === '/' && text[i + 1] === '/') {
      while (i < text.length && text[i] !== '\n') i++;
      out += '\n';
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      i = end === -1 ? text.length : end + 1;
    } else out += c;
  }
  return out.replace(/,(\s*[}\]])/g, '$1');
}

/** Index just past the `"..."` string starting at `start` (backslash escapes honoured). */
function endOfBasicString(text: string, start: number): number {
  let i = start + 1;
  while (i < text.length && text[i] !== '"' && text[i] !== '\n') i += text[i] === '\\' ? 2 : 1;
  return i + 1;
}

// ---------------------------------------------------------------------------------------------
// The TOML subset

class TomlSyntax extends Error {}

interface Cursor {
  readonly text: string;
  pos: number;
}

function skipSpace(c: Cursor): void {
  while (c.text[c.pos] === ' ' || c.text[c.pos] === '\t') c.pos++;
}

/** A basic ("...") or literal ('...') single-line string at the cursor. */
function readString(c: Cursor): string {
  const quote = c.text[c.pos];
  if (quote === "'") {
    const end = c.text.indexOf("'", c.pos + 1);
    const nl = c.text.indexOf('\n', c.pos + 1);
    if (end === -1 || (nl !== -1 && nl < end)) throw new TomlSyntax('unterminated string');
    const value = c.text.slice(c.pos + 1, end);
    c.pos = end + 1;
    return value;
  }
  const end = endOfBasicString(c.text, c.pos);
  if (c.text[end - 1] !== '"') throw new TomlSyntax('unterminated string');
  const raw = c.text.slice(c.pos, end);
  c.pos = end;
  // TOML's basic-string escapes are JSON's plus \UXXXXXXXX, \e and \xHH, which no path needs.
  try {
    return JSON.parse(raw) as string;
  } catch {
    throw new TomlSyntax('a string escape this reader does not take');
  }
}

/** A dotted key (`alias."gatehouse:policy"`), as its parts. */
function readKey(c: Cursor): string[] {
  const parts: string[] = [];
  for (;;) {
    skipSpace(c);
    const ch = c.text[c.pos];
    if (ch === '"' || ch === "'") parts.push(readString(c));
    else {
      const match = /^[A-Za-z0-9_-]+/.exec(c.text.slice(c.pos, c.pos + 256));
      if (match === null) throw new TomlSyntax('expected a key');
      parts.push(match[0]);
      c.pos += match[0].length;
    }
    skipSpace(c);
    if (c.text[c.pos] !== '.') return parts;
    c.pos++;
  }
}

type Value =
  | { kind: 'string'; value: string }
  | { kind: 'table'; entries: Entry[] }
  | { kind: 'other' };
type Entry = { key: string[]; value: Value };

/**
 * A value: a single-line string, an inline table, or anything else skipped to its end (arrays
 * and multi-line strings may span lines; brackets inside strings do not count).
 */
function readValue(c: Cursor): Value {
  skipSpace(c);
  const ch = c.text[c.pos];
  const triple = c.text.slice(c.pos, c.pos + 3);
  if (triple === '"""' || triple === "'''") {
    const end = c.text.indexOf(triple, c.pos + 3);
    if (end === -1) throw new TomlSyntax('unterminated multi-line string');
    c.pos = end + 3;
    while (c.text[c.pos] === triple[0]) c.pos++; // up to two quotes may end the content
    return { kind: 'other' };
  }
  if (ch === '"' || ch === "'") return { kind: 'string', value: readString(c) };
  if (ch === '{') {
    c.pos++;
    const entries: Entry[] = [];
    skipSpace(c);
    if (c.text[c.pos] === '}') {
      c.pos++;
      return { kind: 'table', entries };
    }
    for (;;) {
      const key = readKey(c);
      if (c.text[c.pos] !== '=') throw new TomlSyntax('expected =');
      c.pos++;
      entries.push({ key, value: readValue(c) });
      skipSpace(c);
      const next = c.text[c.pos++];
      if (next === '}') return { kind: 'table', entries };
      if (next !== ',') throw new TomlSyntax('expected , or }');
    }
  }
  if (ch === '[') {
    let depth = 0;
    while (c.pos < c.text.length) {
      const x = c.text[c.pos]!;
      if (x === '"' || x === "'") {
        readValue(c);
        continue;
      }
      if (x === '#') {
        while (c.pos < c.text.length && c.text[c.pos] !== '\n') c.pos++;
        continue;
      }
      c.pos++;
      if (x === '[' || x === '{') depth++;
      else if ((x === ']' || x === '}') && --depth === 0) return { kind: 'other' };
    }
    throw new TomlSyntax('unterminated array');
  }
  // Numbers, booleans, dates: up to the end of the line or a comment, comma or brace.
  while (c.pos < c.text.length && !/[\n#,}]/.test(c.text[c.pos]!)) c.pos++;
  return { kind: 'other' };
}

/** The rest of the line must be blank or a comment. */
function endOfLine(c: Cursor): void {
  skipSpace(c);
  if (c.text[c.pos] === '#') {
    while (c.pos < c.text.length && c.text[c.pos] !== '\n') c.pos++;
  }
  if (c.text[c.pos] === '\r') c.pos++;
  if (c.pos < c.text.length && c.text[c.pos] !== '\n') throw new TomlSyntax('unexpected text');
  c.pos++;
}

const same = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((part, i) => part === b[i]);

function tomlAlias(text: string, file: string): unknown {
  const c: Cursor = { text, pos: 0 };
  let table: string[] = [];
  let found: Value | undefined;
  try {
    while (c.pos < text.length) {
      skipSpace(c);
      const ch = text[c.pos];
      if (ch === '\n' || ch === '\r' || ch === '#' || ch === undefined) {
        endOfLine(c);
        continue;
      }
      if (ch === '[') {
        const array = text[c.pos + 1] === '[';
        c.pos += array ? 2 : 1;
        table = readKey(c);
        if (text[c.pos] !== ']' || (array && text[c.pos + 1] !== ']')) {
          throw new TomlSyntax('expected ]');
        }
        c.pos += array ? 2 : 1;
        if (array) table = ['[[array]]', ...table]; // never the top-level alias table
        endOfLine(c);
        continue;
      }
      const key = [...table, ...readKey(c)];
      if (text[c.pos] !== '=') throw new TomlSyntax('expected =');
      c.pos++;
      const value = readValue(c);
      endOfLine(c);
      if (same(key, ['alias', POLICY_ALIAS])) found = value;
      else if (same(key, ['alias']) && value.kind === 'table') {
        const entry = value.entries.find((e) => same(e.key, [POLICY_ALIAS]));
        if (entry !== undefined) found = entry.value;
      }
    }
  } catch (error) {
    if (!(error instanceof TomlSyntax)) throw error;
    const line = text.slice(0, c.pos).split('\n').length;
    throw new ConfigError(file, `line ${line}: ${error.message} (reading ${ALIAS_FIELD})`);
  }
  if (found === undefined) return undefined;
  return found.kind === 'string' ? found.value : null;
}
