/**
 * `gatehouse token <subject>`: a development token from the policy's HS256 dev issuer (the one
 * whose key is `secretEnv`), signed with the local secret from .dev.vars (written by `npm start`)
 * or the environment. For local use only: production tokens come from your identity provider.
 */
import * as jose from 'jose';
import { parsePolicyText } from '../policy/text.ts';
import { type CliIo, parseDotenv, parseDuration, UsageError } from './io.ts';
import { configuredPolicyFile, devVarsBeside } from './wrangler-config.ts';

export interface DevIssuer {
  readonly issuer: string;
  readonly audience: string | undefined;
  readonly kid: string | undefined;
  readonly algorithm: 'HS256' | 'HS384' | 'HS512';
  readonly secretEnv: string;
}

/** The policy's first issuer with a `secretEnv` key: the development issuer. */
export function devIssuer(policy: unknown): DevIssuer {
  const issuers = (policy as { issuers?: unknown }).issuers;
  if (Array.isArray(issuers)) {
    for (const entry of issuers) {
      const keys = (entry as { keys?: { secretEnv?: unknown; kid?: unknown } }).keys;
      if (typeof keys?.secretEnv !== 'string') continue;
      const e = entry as { issuer: string; audiences?: unknown; algorithms?: unknown };
      const algorithms = Array.isArray(e.algorithms) ? e.algorithms : [];
      const algorithm = algorithms.find((a) => a === 'HS256' || a === 'HS384' || a === 'HS512');
      return {
        issuer: e.issuer,
        audience: Array.isArray(e.audiences) ? (e.audiences[0] as string) : undefined,
        kid: typeof keys.kid === 'string' ? keys.kid : undefined,
        algorithm: algorithm ?? 'HS256',
        secretEnv: keys.secretEnv,
      };
    }
  }
  throw new UsageError('the policy has no development issuer (an issuer with keys.secretEnv)');
}

export interface MintOptions {
  readonly subject: string;
  readonly ttlSeconds: number;
  readonly claims?: Readonly<Record<string, unknown>>;
  readonly secret: string;
  readonly issuer: DevIssuer;
  readonly now?: number;
}

/** Signs a development token. */
export async function mintDevToken(options: MintOptions): Promise<string> {
  const now = Math.floor((options.now ?? Date.now()) / 1000);
  const jwt = new jose.SignJWT({ ...options.claims })
    .setProtectedHeader({
      alg: options.issuer.algorithm,
      typ: 'JWT',
      ...(options.issuer.kid !== undefined && { kid: options.issuer.kid }),
    })
    .setIssuer(options.issuer.issuer)
    .setSubject(options.subject)
    .setIssuedAt(now)
    .setExpirationTime(now + options.ttlSeconds);
  if (options.issuer.audience !== undefined) jwt.setAudience(options.issuer.audience);
  return jwt.sign(new TextEncoder().encode(options.secret));
}

/** The dev secret: the environment first, then `.dev.vars`. */
export async function readDevSecret(io: CliIo, name: string, file: string): Promise<string> {
  const fromEnv = io.env[name];
  if (fromEnv) return fromEnv;
  const text = await io.readFile(file);
  const value = text === null ? undefined : parseDotenv(text)[name];
  if (!value) {
    throw new UsageError(
      `${name} is not set and ${file} has none: run \`npm start\` once to create it`,
    );
  }
  return value;
}

export const TOKEN_USAGE = `Usage: gatehouse token <subject> [options]

Mints a development token for the policy's dev issuer (HS256, secret from .dev.vars).

Options:
  --ttl <duration>     lifetime: 90s, 15m, 1h, 2d (default 1h)
  --claim <k=v>        an extra claim; repeatable; v is parsed as JSON when it can be
                       (--claim tid=acme, --claim mfa=true)
  --policy <file>      policy with the dev issuer (default $GATEHOUSE_POLICY, else the file
                       the wrangler config's [alias] "gatehouse:policy" names, else
                       demo/policy.json)
  --config <file>      wrangler config (default wrangler.toml)
  --vars <file>        dotenv file holding the secret (default .dev.vars beside the config)
  -h, --help           this help`;

export async function tokenCommand(args: readonly string[], io: CliIo): Promise<number> {
  let subject: string | undefined;
  let ttl = 3600;
  let policyFile: string | undefined;
  let configFile = 'wrangler.toml';
  let varsFile: string | undefined;
  const claims: Record<string, unknown> = {};
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    const value = (): string => {
      const next = args[++i];
      if (next === undefined) throw new UsageError(`${arg} needs a value`);
      return next;
    };
    if (arg === '-h' || arg === '--help') {
      io.out(TOKEN_USAGE);
      return 0;
    } else if (arg === '--ttl') {
      const seconds = parseDuration(value());
      if (seconds === null) throw new UsageError('--ttl expects a duration such as 90s, 15m, 1h');
      ttl = seconds;
    } else if (arg === '--claim') {
      const pair = value();
      const eq = pair.indexOf('=');
      if (eq <= 0) throw new UsageError('--claim expects name=value');
      const name = pair.slice(0, eq);
      if (['iss', 'sub', 'aud', 'exp', 'iat', 'nbf'].includes(name)) {
        throw new UsageError(`--claim cannot set ${name}`);
      }
      const raw = pair.slice(eq + 1);
      try {
        claims[name] = JSON.parse(raw);
      } catch {
        claims[name] = raw;
      }
    } else if (arg === '--policy') policyFile = value();
    else if (arg === '--config') configFile = value();
    else if (arg === '--vars') varsFile = value();
    else if (arg.startsWith('-')) throw new UsageError(`unknown option ${arg}`);
    else if (subject === undefined) subject = arg;
    else throw new UsageError(`unexpected argument ${arg}`);
  }
  if (subject === undefined || subject === '') throw new UsageError('missing <subject>');
  policyFile ??= io.env.GATEHOUSE_POLICY ?? (await configuredPolicyFile(io.readFile, configFile));
  const policyText = await io.readFile(policyFile);
  if (policyText === null) throw new UsageError(`cannot read ${policyFile} (use --policy)`);
  const issuer = devIssuer(parsePolicyText(policyText, policyFile));
  const secret = await readDevSecret(io, issuer.secretEnv, varsFile ?? devVarsBeside(configFile));
  io.out(await mintDevToken({ subject, ttlSeconds: ttl, claims, secret, issuer, now: io.now() }));
  return 0;
}
