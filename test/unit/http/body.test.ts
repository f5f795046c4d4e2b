import { describe, expect, it } from 'vitest';
import { readCappedText, readJsonBody } from '../../../src/http/body.ts';

// The one strict JSON body reader behind the check API and the admin API (Worker and Lambda):
// each refusal class, in the order the checks run.

const JSON_TYPE = /^application\/json\s*(;|$)/i;

function source(text: string | null, headers: Record<string, string> = {}) {
  return {
    headers: new Headers({ 'content-type': 'application/json', ...headers }),
    body: async (max: number) => {
      if (text === null) return null;
      const bytes = new TextEncoder().encode(text);
      return readCappedText(new Blob([bytes]).stream(), max);
    },
  };
}

const options = { maxBytes: 64, mediaType: JSON_TYPE };

describe('readJsonBody', () => {
  it('returns the parsed value', async () => {
    expect(await readJsonBody(source('{"a":[1,{"b":2}]}'), options)).toEqual({
      ok: true,
      value: { a: [1, { b: 2 }] },
    });
  });

  it.each(['text/plain', 'application/json-seq', ''])(
    'refuses the media type %j before reading',
    async (type) => {
      const read = await readJsonBody(source('{}', { 'content-type': type }), options);
      expect(read).toEqual({ ok: false, refusal: 'unsupported_media_type' });
    },
  );

  it('refuses a declared length over the cap, and an undeclared body that grows past it', async () => {
    const declared = source('{}', { 'content-length': '65' });
    expect(await readJsonBody(declared, options)).toEqual({ ok: false, refusal: 'too_large' });
    const chunked = source(`{"a":"${'x'.repeat(64)}"}`);
    expect(await readJsonBody(chunked, options)).toEqual({ ok: false, refusal: 'too_large' });
  });

  it.each(['{"a":', ''])('refuses %j as not JSON', async (text) => {
    expect(await readJsonBody(source(text), options)).toEqual({ ok: false, refusal: 'not_json' });
  });

  it('refuses invalid UTF-8 as not JSON', async () => {
    const bytes = new Uint8Array([0x7b, 0xff, 0x7d]);
    const body = (max: number) => readCappedText(new Blob([bytes]).stream(), max);
    const read = await readJsonBody({ ...source('{}'), body }, options);
    expect(read).toEqual({ ok: false, refusal: 'not_json' });
  });

  it.each(['{"a":1,"a":2}', '{"x":{"b":1,"\\u0062":2}}', '[{"k":1,"k":1}]'])(
    'refuses a repeated member name in %s',
    async (text) => {
      expect(await readJsonBody(source(text), options)).toEqual({
        ok: false,
        refusal: 'duplicate_member_name',
      });
    },
  );
});
