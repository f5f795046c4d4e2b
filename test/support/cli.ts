/**
 * Runs the CLI in-process, as bin/gatehouse.mjs does, with the real file system and a clock the
 * test controls, capturing what it prints. The stores it reaches are real (local KV, dynalite).
 */
import { readFile } from 'node:fs/promises';
import { main } from '../../src/cli/index.ts';

export interface CliRun {
  readonly code: number;
  readonly out: string;
  readonly err: string;
}

export interface CliHarness {
  run(...argv: string[]): Promise<CliRun>;
  /** Runs with `--json` and parses stdout; fails the test when the command fails. */
  json<T = unknown>(...argv: string[]): Promise<T>;
}

export function cliHarness(options: {
  /** Arguments added to every call (the target, the policy). */
  readonly common: readonly string[];
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly now?: () => number;
  readonly stdin?: () => string;
}): CliHarness {
  const run = async (...argv: string[]): Promise<CliRun> => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await main([...argv, ...options.common], {
      async readFile(path) {
        try {
          return await readFile(path, 'utf8');
        } catch (error) {
          if ((error as { code?: string }).code === 'ENOENT') return null;
          throw error;
        }
      },
      env: { USER: 'tester', ...options.env },
      out: (line) => out.push(line),
      err: (line) => err.push(line),
      now: options.now ?? Date.now,
      progress: (line) => err.push(line),
      readStdin: async () => options.stdin?.() ?? '',
    });
    return { code, out: out.join('\n'), err: err.join('\n') };
  };
  return {
    run,
    async json<T>(...argv: string[]): Promise<T> {
      const result = await run(...argv, '--json');
      if (result.code !== 0) {
        throw new Error(`gatehouse ${argv.join(' ')} exited ${result.code}: ${result.err}`);
      }
      return JSON.parse(result.out) as T;
    },
  };
}
