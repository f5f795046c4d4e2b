import { toJsonSchema } from '@valibot/to-json-schema';
import { PolicySchema } from '../src/policy/schema.ts';

/** The published JSON Schema for policy files (draft 2020-12). */
export function policyJsonSchema(): Record<string, unknown> {
  return {
    ...toJsonSchema(PolicySchema, { target: 'draft-2020-12', errorMode: 'ignore' }),
    $id: 'https://gatehouse.dev/schema/policy.schema.json',
    title: 'Gatehouse policy',
  };
}
