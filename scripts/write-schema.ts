/** Writes schema/policy.schema.json from the valibot schema, so editors validate policy files. */
import { writeFileSync } from 'node:fs';
import { policyJsonSchema } from './policy-json-schema.ts';

const target = new URL('../schema/policy.schema.json', import.meta.url);
writeFileSync(target, `${JSON.stringify(policyJsonSchema(), null, 2)}\n`);
console.log(`wrote ${target.pathname}`);
