/**
 * What the CLI needs from its host, injected by bin/gatehouse.mjs (Node) so src/ stays free of
 * platform imports and commands are testable with fakes.
 */
export interface CliIo {
  /** A file's text, or null when it does not exist. */
  readFile(path: string): Promise<string | null>;
  /** Environment variables. */
  readonly env: Readonly<Record<string, string | undefined>>;
  out(line: string): void;
  err(line: string): void;
  now(): number;
  /** A progress line for long operations (stderr; overwritten in place on a terminal). */
  progress?(line: string): void;
  /** Standard input as text, for `import -`. */
  readStdin?(): Promise<string>;
}

/** A usage mistake: printed with the command's usage, exit code 2. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
}

/** `KEY=value` lines of a dotenv file (.dev.vars); quotes around a value are removed. */
export function parseDotenv(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const eq = line.indexOf('=');
    if (eq <= 0) continue;
    const key = line.slice(0, eq).trim();
    let value = line.slice(eq + 1).trim();
    if (value.length >= 2 && (value[0] === '"' || value[0] === "'") && value.endsWith(value[0])) {
      value = value.slice(1, -1);
    }
    out[key] = value;
  }
  return out;
}

// Durations are a management concept shared with the admin API; the CLI keeps its import path.
export { parseDuration } from '../admin/time.ts';
