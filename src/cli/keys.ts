/**
 * `gatehouse keys generate | rotate | public`: Gatehouse's own delegation signing keys. The key
 * set is printed on stdout, and only there, so it can go straight into a secret store:
 *
 *   npx gatehouse keys generate | npx wrangler secret put GATEHOUSE_DELEGATION_KEYS
 *   aws secretsmanager put-secret-value --secret-id … --secret-string "$(npx gatehouse keys rotate --from -)"
 *
 * Rotation: `next` starts signing, the old `current` is kept as `previous` (tokens it signed
 * live at most the maximum lifetime, 15 minutes by default), and a new `next` is published.
 * Deploy the rotated set, then after the maximum lifetime rotate again to drop `previous`.
 */
import {
  DEFAULT_KEYS_ENV,
  generateIssuerKeySet,
  ISSUER_ALGORITHMS,
  type IssuerAlgorithm,
  parseIssuerKeys,
  publicJwks,
  rotateIssuerKeySet,
} from '../delegation/index.ts';
import { ConfigError } from '../errors.ts';
import { type CliIo, UsageError } from './io.ts';

export const KEYS_USAGE = `Usage: gatehouse keys <generate|rotate|public> [options]

  generate              print a new key set (current + next) as JSON
  rotate                print the set rotated: next signs, current stays as previous, a new next
  public                print the public JWKS document of a set

Options:
  --alg EdDSA|ES256     algorithm of new keys (default EdDSA; rotate keeps the current one's)
  --from <file>|-       the set to rotate or publish (default: $${DEFAULT_KEYS_ENV})

The set is printed on stdout only: pipe it into \`wrangler secret put ${DEFAULT_KEYS_ENV}\` or
Secrets Manager; never commit it.`;

function option(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(name);
  if (i === -1) return undefined;
  const value = args[i + 1];
  if (value === undefined || (value.startsWith('--') && value !== '-')) {
    throw new UsageError(`${name} needs a value`);
  }
  return value;
}

async function readSet(
  args: readonly string[],
  io: CliIo,
): Promise<{ text: string; field: string }> {
  const from = option(args, '--from');
  if (from === undefined) {
    const text = io.env[DEFAULT_KEYS_ENV];
    if (!text) throw new UsageError(`give --from <file>|- or set ${DEFAULT_KEYS_ENV}`);
    return { text, field: DEFAULT_KEYS_ENV };
  }
  if (from === '-') {
    if (io.readStdin === undefined) throw new UsageError('stdin is not available');
    return { text: await io.readStdin(), field: 'stdin' };
  }
  const text = await io.readFile(from);
  if (text === null) throw new UsageError(`no file ${from}`);
  return { text, field: from };
}

export async function keysCommand(args: readonly string[], io: CliIo): Promise<number> {
  const [action, ...rest] = args;
  if (action === undefined || action === '--help' || action === '-h') {
    io.out(KEYS_USAGE);
    return action === undefined ? 2 : 0;
  }
  const known = new Set(['--alg', '--from']);
  for (let i = 0; i < rest.length; i += 2) {
    if (!known.has(rest[i]!)) throw new UsageError(`unknown option ${rest[i]}`);
  }
  const alg = option(rest, '--alg');
  if (alg !== undefined && !(ISSUER_ALGORITHMS as readonly string[]).includes(alg)) {
    throw new UsageError('--alg must be EdDSA or ES256');
  }
  try {
    if (action === 'generate') {
      io.out(await generateIssuerKeySet((alg ?? 'EdDSA') as IssuerAlgorithm));
      return 0;
    }
    if (action === 'rotate') {
      const { text, field } = await readSet(rest, io);
      io.out(await rotateIssuerKeySet(text.trim(), field, alg as IssuerAlgorithm | undefined));
      return 0;
    }
    if (action === 'public') {
      const { text, field } = await readSet(rest, io);
      io.out(JSON.stringify(publicJwks(parseIssuerKeys(text.trim(), field)), null, 2));
      return 0;
    }
  } catch (error) {
    // Names the member at fault, never a key (ConfigError messages hold no values).
    if (error instanceof ConfigError) {
      io.err(`gatehouse keys: ${error.message}`);
      return 1;
    }
    throw error;
  }
  throw new UsageError(`unknown action ${action}`);
}
