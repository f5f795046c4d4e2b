/**
 * The policy a wrangler configuration points at (src/cli/wrangler-config.ts), checked against
 * wrangler's own configuration reader on the same files: whatever form the entry takes, the
 * tools must find the file the Worker bundles, and nothing else in the file may be taken for it.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { experimental_readRawConfig } from 'wrangler';
import {
  configuredPolicyFile,
  DEMO_POLICY,
  policyAlias,
  resolveFromConfig,
} from '../../src/cli/wrangler-config.ts';
import { ConfigError } from '../../src/errors.ts';

let dir = '';
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'gatehouse-wrangler-config-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let serial = 0;
/** What wrangler reads as alias["gatehouse:policy"] from this configuration text. */
function wranglerReads(text: string, ext: 'toml' | 'json' | 'jsonc'): unknown {
  const sub = join(dir, `c${serial++}`);
  mkdirSync(sub);
  const file = join(sub, `wrangler.${ext}`);
  writeFileSync(file, text);
  const { rawConfig } = experimental_readRawConfig({ config: file });
  return (rawConfig.alias as Record<string, unknown> | undefined)?.['gatehouse:policy'];
}

const head = 'name = "x"\nmain = "w.ts"\ncompatibility_date = "2026-11-01"\n';

/** Configuration text and the value both readers must find in it. */
const tomlCases: Record<string, [text: string, expected: string | undefined]> = {
  'the committed wrangler.toml': [
    readFileSync(new URL('../../wrangler.toml', import.meta.url), 'utf8'),
    './demo/policy.json',
  ],
  'an [alias] table after other tables, with a comment': [
    `${head}
[vars]
ORIGIN = "echo" # where allowed requests go
[[kv_namespaces]]
binding = "PERMISSIONS"
id = "x"

[alias]
"other:module" = "./other.js"
"gatehouse:policy" = "./config/my-policy.json"   # ours
`,
    './config/my-policy.json',
  ],
  'a literal string': [
    `${head}[alias]\n'gatehouse:policy' = 'C:\\policies\\mine.json'\n`,
    'C:\\policies\\mine.json',
  ],
  'an inline table': [
    `${head}alias = { "react" = "./r.js", "gatehouse:policy" = "./inline.json" }\n[vars]\nA = "1"\n`,
    './inline.json',
  ],
  'a dotted key at the top level': [
    `${head}alias."gatehouse:policy" = "../shared/policy.json"\n`,
    '../shared/policy.json',
  ],
  'a unicode escape': [
    `${head}[alias]\n"gatehouse:policy" = "./p\\u00e9.json"\n`,
    './p\u00e9.json',
  ],
  'no alias at all': [head, undefined],
  'an alias only in an environment': [
    `${head}[env.prod.alias]\n"gatehouse:policy" = "./prod.json"\n`,
    undefined,
  ],
  'look-alikes in strings, arrays and multi-line strings': [
    `${head}
[vars]
NOTE = "[alias] \\"gatehouse:policy\\" = \\"./wrong.json\\""
LIST = [
  "a # not a comment",
  [1, 2],
]
TEXT = """
[alias]
"gatehouse:policy" = "./wrong-too.json"
"""
[alias]
"gatehouse:policy" = "./right.json"
`,
    './right.json',
  ],
  'an alias table after an array of tables': [
    `${head}[[services]]\nbinding = "S"\nservice = "s"\n[alias]\n"gatehouse:policy" = "./after-array.json"\n`,
    './after-array.json',
  ],
};

describe('policyAlias reads what wrangler reads', () => {
  it.each(Object.entries(tomlCases))('TOML: %s', (_name, [text, expected]) => {
    expect(policyAlias(text, 'wrangler.toml')).toBe(expected);
    expect(wranglerReads(text, 'toml')).toBe(expected);
  });

  it('JSONC: comments and trailing commas', () => {
    const text = `{
      // the Worker
      "name": "x", "main": "w.ts", "compatibility_date": "2026-11-01",
      /* bundled at build time */
      "alias": { "gatehouse:policy": "./from-jsonc.json", },
    }`;
    const read = policyAlias(text, 'wrangler.jsonc');
    expect(read).toBe('./from-jsonc.json');
    expect(read).toEqual(wranglerReads(text, 'jsonc'));
  });

  it('JSON without an alias', () => {
    const text = '{"name":"x","main":"w.ts","compatibility_date":"2026-11-01"}';
    expect(policyAlias(text, 'wrangler.json')).toBeUndefined();
    expect(wranglerReads(text, 'json')).toBeUndefined();
  });
});

describe('policyAlias refuses what it cannot use, naming the field', () => {
  it.each([
    ['a number', `${head}[alias]\n"gatehouse:policy" = 42\n`],
    ['an empty path', `${head}[alias]\n"gatehouse:policy" = ""\n`],
  ])('%s', (_name, text) => {
    const error = (() => {
      try {
        policyAlias(text, 'wrangler.toml');
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('alias["gatehouse:policy"]');
  });

  it('an unterminated string names the file and line', () => {
    expect(() => policyAlias(`${head}[alias]\n"gatehouse:policy" = "./x.json\n`, 'w.toml')).toThrow(
      /^w\.toml: line 5: unterminated string/,
    );
  });
});

describe('resolveFromConfig', () => {
  it.each([
    ['wrangler.toml', './demo/policy.json', 'demo/policy.json'],
    ['conf/wrangler.toml', './p.json', 'conf/p.json'],
    ['conf/wrangler.toml', '../shared/p.json', 'shared/p.json'],
    ['/srv/app/wrangler.toml', './a/../b/p.json', '/srv/app/b/p.json'],
    ['/srv/app/wrangler.toml', '/etc/p.json', '/etc/p.json'],
    ['../up/wrangler.toml', '../p.json', '../p.json'],
  ])('%s + %s = %s', (config, target, expected) => {
    expect(resolveFromConfig(config, target)).toBe(expected);
  });

  it('refuses a package name (wrangler would look in node_modules)', () => {
    expect(() => resolveFromConfig('wrangler.toml', 'my-policies/p.json')).toThrow(ConfigError);
  });
});

describe('configuredPolicyFile', () => {
  const files = (map: Record<string, string>) => async (path: string) => map[path] ?? null;

  it('follows the alias of the configuration', async () => {
    const read = files({
      'app/wrangler.toml': `${head}[alias]\n"gatehouse:policy" = "./mine.json"\n`,
    });
    expect(await configuredPolicyFile(read, 'app/wrangler.toml')).toBe('app/mine.json');
  });

  it('falls back to the demo policy without a configuration or an alias', async () => {
    expect(await configuredPolicyFile(files({}))).toBe(DEMO_POLICY);
    expect(await configuredPolicyFile(files({ 'wrangler.toml': head }))).toBe(DEMO_POLICY);
  });
});
