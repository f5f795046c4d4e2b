import { describe, expect, it } from 'vitest';
import { createVerifier, extractBearer } from '../../../src/token/index.ts';
import {
  Clock,
  expectCode,
  expectSyncCode,
  issuerWith,
  makeKey,
  mint,
  options,
} from './helpers.ts';

describe('extractBearer', () => {
  it('returns the token after a case-insensitive Bearer scheme', () => {
    expect(extractBearer('Bearer abc.def.ghi')).toBe('abc.def.ghi');
    expect(extractBearer('bearer abc.def.ghi')).toBe('abc.def.ghi');
    expect(extractBearer('BEARER a-b_c~d+e/f==')).toBe('a-b_c~d+e/f==');
  });

  it('reports a missing header as token_missing', () => {
    for (const value of [undefined, null, ''])
      expectSyncCode(() => extractBearer(value), 'token_missing');
  });

  it('reports other schemes and malformed credentials as token_malformed', () => {
    for (const value of [
      'Basic dXNlcjpwYXNz',
      'Bearer',
      'Bearer ',
      'Bearer  abc',
      'Bearer\tabc',
      'Bearer\u0000abc',
      ' Bearer abc',
      'Bearerabc',
      'Token abc',
    ]) {
      expectSyncCode(() => extractBearer(value), 'token_malformed');
    }
  });

  it('leaves the characters of the credential to the verifier, which refuses them as token_malformed', async () => {
    const key = await makeKey('ES256');
    const verifier = createVerifier(options([issuerWith(key)], new Clock()));
    for (const value of [
      'Bearer abc ',
      'Bearer abc def',
      'Bearer a=b',
      `Bearer ${await mint(key)} `,
    ]) {
      await expectCode(verifier.verify(extractBearer(value)), 'token_malformed');
    }
  });
});
