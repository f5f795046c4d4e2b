import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../../src/errors.ts';
import {
  compileRoute,
  fillTemplate,
  parseTemplate,
  type RouteInput,
  RouteTable,
  splitPath,
} from '../../../src/policy/routes.ts';

const pub = { kind: 'public' } as const;

function table(...routes: Omit<RouteInput, 'requirement'>[]): RouteTable {
  return new RouteTable(routes.map((r, i) => compileRoute({ ...r, requirement: pub }, i, `r${i}`)));
}

function matched(t: RouteTable, method: string, path: string): string | null {
  const m = t.match(method, path);
  if (m === 'malformed') return 'malformed';
  return m ? m.route.label : null;
}

describe('route matching', () => {
  const routes = table(
    { path: '/posts/*' },
    { method: 'GET', path: '/posts/:id' },
    { method: 'GET', path: '/posts/drafts' },
    { path: '/posts/:id' },
    { method: 'GET', path: '/posts' },
    { method: ['PUT', 'PATCH'], path: '/posts/:id/tags/:tag' },
    { method: 'GET', path: '/' },
  );

  it.each([
    ['GET', '/posts/drafts', 'GET /posts/drafts'],
    ['GET', '/posts/42', 'GET /posts/:id'],
    ['DELETE', '/posts/42', '* /posts/:id'],
    ['GET', '/posts', 'GET /posts'],
    ['POST', '/posts', '* /posts/*'],
    ['GET', '/posts/42/comments', '* /posts/*'],
    ['PATCH', '/posts/1/tags/x', 'PUT,PATCH /posts/:id/tags/:tag'],
    ['GET', '/', 'GET /'],
    ['GET', '/posts/', 'GET /posts'],
    ['GET', '/posts?draft=1', 'GET /posts'],
    ['HEAD', '/posts/42', 'GET /posts/:id'],
  ])('%s %s goes to %s', (method, path, label) => {
    expect(matched(routes, method, path)).toBe(label);
  });

  it('returns null when nothing matches', () => {
    expect(matched(routes, 'GET', '/users')).toBeNull();
  });

  it('accepts non-ASCII that is already in normal form', () => {
    const m = routes.match('GET', '/posts/caf%C3%A9');
    expect(m !== null && m !== 'malformed' && m.params).toEqual({ id: 'café' });
  });

  it('prefers an explicit HEAD route over GET serving HEAD', () => {
    const t = table(
      { method: 'GET', path: '/x' },
      { method: 'GET', path: '/y' },
      { method: 'HEAD', path: '/x' },
    );
    expect(matched(t, 'HEAD', '/x')).toBe('HEAD /x');
    expect(matched(t, 'HEAD', '/y')).toBe('GET /y');
  });

  it('passes decoded path parameters', () => {
    const m = routes.match('GET', '/posts/a%20b');
    expect(m !== null && m !== 'malformed' && m.params).toEqual({ id: 'a b' });
  });

  it.each([
    '/posts/../admin',
    '/posts/%2e%2e/admin',
    '/posts//42',
    '/posts/a%2Fb',
    '/posts/a%5Cb',
    '/posts/a\\b',
    '/posts/%zz',
    'posts',
    '/posts/42;jsessionid=x',
    '/posts/42%3Bx',
    '/static/..;/admin',
    '/static/%2e%2e;/admin',
    '/posts/42%00',
    '/posts/a%0Ab',
    '/posts/%7F',
    '/static/%EF%BC%8E%EF%BC%8E/admin',
    '/posts/\uD800',
    '/posts/caf\u00e9',
    '/posts/a b',
  ])('treats %s as malformed', (path) => {
    expect(matched(routes, 'GET', path)).toBe('malformed');
  });
});

describe('route compilation', () => {
  it.each([
    [{ path: 'posts' }, 'r.path'],
    [{ path: '/a/*/b' }, 'r.path'],
    [{ path: '/a/:x/:x' }, 'r.path'],
    [{ path: '/a/:1x' }, 'r.path'],
    [{ path: '/a/../b' }, 'r.path'],
    [{ path: '/files/top%20secret' }, 'r.path'],
    [{ path: '/a;b' }, 'r.path'],
    [{ path: '/caf\u00e9' }, 'r.path'],
    [{ path: '/a', method: ['GET', '*'] }, 'r.method'],
  ])('rejects %j naming %s', (route, field) => {
    const run = () => compileRoute({ ...route, requirement: pub } as RouteInput, 0, 'r');
    expect(run).toThrow(ConfigError);
    try {
      run();
    } catch (error) {
      expect((error as ConfigError).field).toBe(field);
    }
  });

  it('rejects a template parameter the path does not have', () => {
    const permissions = [parseTemplate('delete:posts:{slug}', 'f')];
    expect(() =>
      compileRoute(
        { path: '/posts/:id', requirement: { kind: 'all', permissions, filled: true } },
        0,
        'r',
      ),
    ).toThrow(ConfigError);
  });

  it('rejects two routes with the same method and path shape', () => {
    expect(() => table({ method: 'GET', path: '/a/:x' }, { method: 'GET', path: '/a/:y' })).toThrow(
      /overlaps/,
    );
  });
});

describe('permission templates', () => {
  it('fills parameters into their segments', () => {
    const t = parseTemplate('delete:posts:{id}', 'f');
    expect(fillTemplate(t, { id: '42' })).toBe('delete:posts:42');
  });

  it('encodes a value so it stays one segment', () => {
    const t = parseTemplate('delete:posts:{id}', 'f');
    expect(fillTemplate(t, { id: 'a:b' })).toBe('delete:posts:a%3Ab');
    expect(fillTemplate(t, { id: '*' })).toBe('delete:posts:%2A');
    expect(fillTemplate(t, { id: '100%' })).toBe('delete:posts:100%25');
  });

  it.each(['read:doc-{id}', 'read:{a}{b}', 'read:{a}.{b}'])(
    'rejects %s: a hole must fill a whole segment',
    (text) => {
      expect(() => parseTemplate(text, 'f')).toThrow(ConfigError);
    },
  );

  it('rejects unbalanced braces', () => {
    expect(() => parseTemplate('read:{id', 'f')).toThrow(ConfigError);
  });
});

describe('splitPath', () => {
  it('splits the root to no segments', () => {
    expect(splitPath('/')).toEqual([]);
  });

  /** The rule as first written (split, then one pattern per segment): the fast path must equal it. */
  function reference(rawPath: string): string[] | null {
    const q = rawPath.indexOf('?');
    const path = q === -1 ? rawPath : rawPath.slice(0, q);
    if (!path.startsWith('/') || !/^[\x21-\x7E]*$/.test(path)) return null;
    if (path === '/') return [];
    const parts = path.slice(1).split('/');
    if (parts.at(-1) === '') parts.pop();
    for (let i = 0; i < parts.length; i++) {
      let part = parts[i]!;
      if (part.includes('%')) {
        try {
          part = decodeURIComponent(part);
        } catch {
          return null;
        }
        if (/[^\x00-\x7E]/.test(part) && part.normalize('NFKC') !== part) return null;
        parts[i] = part;
      }
      if (part === '' || part === '.' || part === '..' || /[/\\;\x00-\x1F\x7F]/.test(part)) {
        return null;
      }
    }
    return parts;
  }

  it('answers every path as the rule: segments, refusals, decoding', () => {
    const piece = fc.constantFrom(
      ...['/', '/', '/', 'a', 'b1', '.', '..', ';', '\\', '?', '%2e', '%2F', '%3b', '%5c', '%00'],
      ...['%41', '%', '%zz', '%e2%80%a8', '%ef%bc%8e', 'é', ' ', '\t', '~', '*'],
    );
    fc.assert(
      fc.property(fc.array(piece, { maxLength: 10 }), (pieces) => {
        const path = pieces.join('');
        expect(splitPath(path), JSON.stringify(path)).toEqual(reference(path));
      }),
      { numRuns: 20_000 },
    );
  });
});
