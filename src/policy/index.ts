export { type DecisionRequest, Gatehouse, type GatehouseOptions } from './decide.ts';
export { delegatorLacks, standingFor } from './delegator.ts';
export {
  type CompiledPolicy,
  compilePolicy,
  type LoadPolicyOptions,
  toGrant,
} from './policy.ts';
export { fillTemplate, RouteTable, splitPath } from './routes.ts';
export { type PolicyDocument, PolicySchema } from './schema.ts';
export { parsePolicyText } from './text.ts';
