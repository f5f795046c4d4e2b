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

/** Seconds from `90`, `90s`, `15m`, `1h`, `2d`. */
export function parseDuration(text: string): number | null {
  const match = /^(\d{1,7})([smhd]?)$/.exec(text);
  if (match === null) return null;
  const unit = { '': 1, s: 1, m: 60, h: 3600, d: 86_400 }[match[2] as '' | 's' | 'm' | 'h' | 'd'];
  const seconds = Number(match[1]) * unit;
  return seconds > 0 ? seconds : null;
}
