// Types for scripts/node22.mjs (plain JavaScript so it runs on an old node before anything else).

/** The oldest Node.js Gatehouse runs on (package.json `engines`). */
export const MINIMUM: string;
/** Whether a version string (`v20.20.2`, `22.12.0`) is at least {@link MINIMUM}. */
export function isSupported(version: string): boolean;
/** Where the registry's Node 22 is kept ($GATEHOUSE_NODE_CACHE, else ~/.cache/gatehouse-node). */
export function cacheDir(env?: Readonly<Record<string, string | undefined>>): string;
/** A node binary of at least {@link MINIMUM}, installed first when needed. */
export function node22Binary(): string;
/** Returns on Node 22.12+; otherwise runs the same script under Node 22 and exits as it does. */
export function runUnderNode22(): Promise<void>;
