/**
 * The CLI (`npx gatehouse <command>`): `token` mints development tokens; the management commands
 * (src/cli/manage.ts) change and explain permissions in a target store.
 */
import { type CliIo, UsageError } from './io.ts';
import { KEYS_USAGE, keysCommand } from './keys.ts';
import { MANAGE_COMMANDS, runManageCommand } from './manage.ts';
import { TOKEN_USAGE, tokenCommand } from './token.ts';

interface Command {
  readonly summary: string;
  readonly usage: string;
  run(args: readonly string[], io: CliIo): Promise<number>;
}

const COMMANDS: Readonly<Record<string, Command>> = {
  token: {
    summary: 'mint a development token for a subject',
    usage: TOKEN_USAGE,
    run: tokenCommand,
  },
  keys: {
    summary: "generate, rotate or publish Gatehouse's delegation signing keys",
    usage: KEYS_USAGE,
    run: keysCommand,
  },
  ...Object.fromEntries(
    Object.entries(MANAGE_COMMANDS).map(([name, command]) => [
      name,
      {
        summary: command.summary,
        usage: command.usage,
        run: (args: readonly string[], io: CliIo) => runManageCommand(command, args, io),
      },
    ]),
  ),
};

export function usage(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((n) => n.length));
  const lines = Object.entries(COMMANDS).map(
    ([name, c]) => `  ${name.padEnd(width)}  ${c.summary}`,
  );
  return [
    'Usage: gatehouse <command> [options]',
    '',
    'Commands:',
    ...lines,
    '',
    'Run `gatehouse <command> --help` for a command’s options.',
  ].join('\n');
}

/** Runs the CLI; returns the exit code (0 ok, 1 failure, 2 usage). */
export async function main(argv: readonly string[], io: CliIo): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '-h' || name === '--help' || name === 'help') {
    io.out(usage());
    return name === undefined ? 2 : 0;
  }
  const command = Object.hasOwn(COMMANDS, name) ? COMMANDS[name] : undefined;
  if (command === undefined) {
    io.err(`gatehouse: unknown command ${name}\n\n${usage()}`);
    return 2;
  }
  try {
    return await command.run(args, io);
  } catch (error) {
    if (error instanceof UsageError) {
      io.err(`gatehouse ${name}: ${error.message}\n\n${command.usage}`);
      return 2;
    }
    io.err(`gatehouse ${name}: ${describe(error)}`);
    return 1;
  }
}

export type { CliIo } from './io.ts';

/**
 * The message, and a wrangler failure behind a store error: `--kv remote` reports why wrangler
 * failed (not logged in, no such namespace) as its cause, and the user needs that reason.
 */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const cause = error.cause;
  if (cause instanceof Error && cause.name === 'WranglerCommandError') {
    return `${error.message}: ${cause.message}`;
  }
  return error.message;
}
