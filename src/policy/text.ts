/**
 * Policy text (YAML or JSON) → value. Kept apart from compilePolicy so a Worker that bundles its
 * policy as JSON does not carry a YAML parser.
 */
import { parse as parseYaml } from 'yaml';
import { ConfigError } from '../errors.ts';

/** Parses policy text; `.json` names (or text starting with `{`) are JSON, everything else YAML. */
export function parsePolicyText(text: string, name = 'policy'): unknown {
  const json = name.endsWith('.json') || text.trimStart().startsWith('{');
  try {
    // uniqueKeys: a duplicated key in a policy is a mistake, not "last one wins".
    return json ? JSON.parse(text) : parseYaml(text, { uniqueKeys: true, prettyErrors: true });
  } catch (error) {
    const detail = error instanceof Error ? error.message.split('\n')[0] : 'unreadable';
    throw new ConfigError(name, `expected valid ${json ? 'JSON' : 'YAML'} (${detail})`, {
      cause: error,
    });
  }
}
