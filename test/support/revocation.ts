/**
 * Measuring revocation: run the real CLI binary as its own process and poll the edge all the
 * while, so the edge keeps refreshing its cache up to the moment the store changes. The figure
 * is the time from the CLI's exit (the change is written before it exits) to the first deny;
 * with continuous polling it falls anywhere in [0, cache TTL], and never beyond it.
 */
import { spawn } from 'node:child_process';

export interface CliProcess {
  /** Resolves with the exit code and stderr, and the performance.now() of the exit. */
  readonly done: Promise<{ status: number | null; stderr: string; exitedAt: number }>;
  readonly startedAt: number;
}

export function cliAsync(
  bin: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): CliProcess {
  const startedAt = performance.now();
  const child = spawn(process.execPath, [bin, ...args], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  const done = new Promise<{ status: number | null; stderr: string; exitedAt: number }>(
    (resolve) => {
      child.on('exit', (status) => resolve({ status, stderr, exitedAt: performance.now() }));
    },
  );
  return { done, startedAt };
}

export interface RevocationFigure {
  /** ms from the CLI's exit to the first deny (negative: denied before the CLI finished exiting). */
  readonly afterExitMs: number;
  /** ms from the CLI's start to the first deny. */
  readonly afterStartMs: number;
  readonly cliMs: number;
  /** Allowed answers seen while the CLI ran: the edge was serving the grant from its cache. */
  readonly allowsDuringCli: number;
  readonly denied: boolean;
  readonly status: number | null;
  readonly stderr: string;
}

/** Polls `allowed()` every `pollMs` while the CLI runs and after, until a deny or `giveUpMs`. */
export async function pollUntilDenied(
  cli: CliProcess,
  allowed: () => Promise<boolean>,
  options: { pollMs: number; giveUpMs: number },
): Promise<RevocationFigure> {
  let exit: { status: number | null; stderr: string; exitedAt: number } | undefined;
  void cli.done.then((e) => {
    exit = e;
  });
  let allowsDuringCli = 0;
  let deniedAt: number | undefined;
  while (performance.now() - cli.startedAt < options.giveUpMs) {
    const answer = await allowed();
    const at = performance.now();
    if (!answer) {
      deniedAt = at;
      break;
    }
    if (exit === undefined) allowsDuringCli++;
    await new Promise((r) => setTimeout(r, options.pollMs));
  }
  const finished = exit ?? (await cli.done);
  const end = deniedAt ?? performance.now();
  return {
    afterExitMs: end - finished.exitedAt,
    afterStartMs: end - cli.startedAt,
    cliMs: finished.exitedAt - cli.startedAt,
    allowsDuringCli,
    denied: deniedAt !== undefined,
    status: finished.status,
    stderr: finished.stderr,
  };
}
