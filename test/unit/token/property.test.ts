import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { TokenError } from '../../../src/errors.ts';
import type { TokenVerifier } from '../../../src/token/index.ts';
import {
  Clock,
  createVerifier,
  eachBackend,
  issuerWith,
  makeKey,
  mint,
  options,
} from './helpers.ts';

let verifier: TokenVerifier;
let token: string;

const CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.=+/ \n%';

async function rejects(candidate: string): Promise<boolean> {
  try {
    await verifier.verify(candidate);
    return false;
  } catch (error) {
    expect(error).toBeInstanceOf(TokenError);
    return true;
  }
}

eachBackend(() => {
  describe('mutations of a valid token', () => {
    beforeAll(async () => {
      const key = await makeKey('ES256');
      verifier = createVerifier(options([issuerWith(key)], new Clock()));
      token = await mint(key);
    });

    it('the original verifies', async () => {
      await expect(verifier.verify(token)).resolves.toBeDefined();
    });

    it('never verify after replacing one character, except the identity', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.nat({ max: 10_000 }),
          fc.constantFrom(...CHARS),
          async (position, char) => {
            const i = position % token.length;
            const mutated = token.slice(0, i) + char + token.slice(i + 1);
            fc.pre(mutated !== token);
            expect(await rejects(mutated)).toBe(true);
          },
        ),
        { numRuns: 500 },
      );
    });

    it('never verify after inserting, deleting or changing several characters', async () => {
      const edit = fc.oneof(
        fc.record({
          kind: fc.constant('insert' as const),
          at: fc.nat(),
          char: fc.constantFrom(...CHARS),
        }),
        fc.record({ kind: fc.constant('delete' as const), at: fc.nat(), char: fc.constant('') }),
        fc.record({
          kind: fc.constant('replace' as const),
          at: fc.nat(),
          char: fc.constantFrom(...CHARS),
        }),
      );
      await fc.assert(
        fc.asyncProperty(fc.array(edit, { minLength: 1, maxLength: 4 }), async (edits) => {
          let mutated = token;
          for (const { kind, at, char } of edits) {
            const i = at % (mutated.length + 1);
            if (kind === 'insert') mutated = mutated.slice(0, i) + char + mutated.slice(i);
            else if (kind === 'delete') mutated = mutated.slice(0, i) + mutated.slice(i + 1);
            else mutated = mutated.slice(0, i) + char + mutated.slice(i + 1);
          }
          fc.pre(mutated !== token);
          expect(await rejects(mutated)).toBe(true);
        }),
        { numRuns: 500 },
      );
    });
  });
});
