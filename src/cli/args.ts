/**
 * A small, strict argument parser for the CLI: every option is declared, an unknown one is a
 * usage error (a typo such as `--expire` must never be ignored and leave a grant permanent).
 */
import { UsageError } from './io.ts';

export interface OptionSpec {
  /** Takes a value (`--tenant acme` or `--tenant=acme`); otherwise a flag. */
  readonly value?: boolean;
  /** May be given more than once; values are collected in order. */
  readonly repeat?: boolean;
  /** Single-letter alias, without the dash. */
  readonly short?: string;
}

export type OptionSpecs = Readonly<Record<string, OptionSpec>>;

export interface ParsedArgs {
  readonly positionals: readonly string[];
  /** Flags are `true`; values are strings; repeatable options are string arrays. */
  readonly options: Readonly<Record<string, string | true | readonly string[]>>;
}

export function parseArgs(args: readonly string[], specs: OptionSpecs): ParsedArgs {
  const positionals: string[] = [];
  const options: Record<string, string | true | string[]> = {};
  const byShort = new Map(
    Object.entries(specs)
      .filter(([, s]) => s.short !== undefined)
      .map(([name, s]) => [s.short!, name]),
  );
  let onlyPositionals = false;
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (onlyPositionals || !arg.startsWith('-') || arg === '-') {
      positionals.push(arg);
      continue;
    }
    if (arg === '--') {
      onlyPositionals = true;
      continue;
    }
    let name: string;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      name = eq === -1 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq === -1 ? undefined : arg.slice(eq + 1);
    } else {
      const alias = byShort.get(arg.slice(1));
      if (alias === undefined) throw new UsageError(`unknown option ${arg}`);
      name = alias;
    }
    const spec = Object.hasOwn(specs, name) ? specs[name] : undefined;
    if (spec === undefined) throw new UsageError(`unknown option --${name}`);
    let value: string | true = true;
    if (spec.value) {
      const next = inline ?? args[++i];
      if (next === undefined) throw new UsageError(`--${name} needs a value`);
      value = next;
    } else if (inline !== undefined) {
      throw new UsageError(`--${name} takes no value`);
    }
    if (spec.repeat) {
      const list = (options[name] as string[] | undefined) ?? [];
      list.push(value as string);
      options[name] = list;
    } else if (Object.hasOwn(options, name)) {
      throw new UsageError(`--${name} given twice`);
    } else {
      options[name] = value;
    }
  }
  return { positionals, options };
}

/** The string value of an option, or undefined. */
export function stringOption(parsed: ParsedArgs, name: string): string | undefined {
  const value = parsed.options[name];
  return typeof value === 'string' ? value : undefined;
}

export function listOption(parsed: ParsedArgs, name: string): readonly string[] {
  const value = parsed.options[name];
  return Array.isArray(value) ? value : [];
}

export function flag(parsed: ParsedArgs, name: string): boolean {
  return parsed.options[name] === true;
}
