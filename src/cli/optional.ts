/**
 * Optional peer dependencies of the CLI: wrangler for the `--kv` targets, the AWS SDK's DynamoDB
 * client for `--dynamodb`. An installed package does not bring them (a Workers project has no use
 * for the AWS SDK, a Lambda project none for wrangler), so the command that needs one says which
 * package to install instead of printing a module-resolution stack.
 */

/** A package a command needs is not installed. */
export class MissingPackageError extends Error {
  override readonly name = 'MissingPackageError';
  readonly code = 'missing_package' as const;
  /** The npm package to install. */
  readonly packageName: string;
  constructor(need: OptionalPackage, options?: { cause?: unknown }) {
    super(`${need.name} is not installed; ${need.usedBy} (${need.install})`, options);
    this.packageName = need.name;
  }
}

/**
 * Runs `load` (an import or resolution of `need.name`); when that package itself cannot be
 * found, throws a {@link MissingPackageError}. Any other failure, including a dependency missing
 * inside an installed copy, passes through unchanged: it is a different fault.
 */
export async function loadOptional<T>(
  need: OptionalPackage,
  load: () => T | Promise<T>,
): Promise<T> {
  try {
    return await load();
  } catch (error) {
    if (isMissing(error, need.name)) throw new MissingPackageError(need, { cause: error });
    throw error;
  }
}

/** Node's ESM (`Cannot find package 'x' imported from …`) and CommonJS (`Cannot find module 'x/…'`) forms. */
function isMissing(error: unknown, packageName: string): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (code !== 'ERR_MODULE_NOT_FOUND' && code !== 'MODULE_NOT_FOUND') return false;
  const quoted = error.message.match(/^Cannot find (?:package|module) '([^']+)'/)?.[1];
  return quoted === packageName || quoted?.startsWith(`${packageName}/`) === true;
}

/** An optional package: its npm name, what uses it, and the command that installs it. */
export interface OptionalPackage {
  readonly name: string;
  readonly usedBy: string;
  readonly install: string;
}

export const WRANGLER: OptionalPackage = {
  name: 'wrangler',
  usedBy: 'the --kv targets run it',
  install: 'npm install --save-dev wrangler',
};

export const DYNAMODB_CLIENT: OptionalPackage = {
  name: '@aws-sdk/client-dynamodb',
  usedBy: 'the --dynamodb target uses it',
  install: 'npm install @aws-sdk/client-dynamodb',
};
