/**
 * The policy bundled into the guard Worker. wrangler.toml's `[alias]` points `gatehouse:policy`
 * at a JSON policy file (demo/policy.json by default); the Worker validates it at start-up.
 */
declare module 'gatehouse:policy' {
  const policy: unknown;
  export default policy;
}
