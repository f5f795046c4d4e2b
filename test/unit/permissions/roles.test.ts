import { describe, expect, it } from 'vitest';
import { ConfigError, StoreError } from '../../../src/errors.ts';
import { compileRoles } from '../../../src/permissions/index.ts';
import type { RoleRecord } from '../../../src/types.ts';

const role = (
  name: string,
  grants: string[],
  inherits: string[] = [],
  denies: string[] = [],
): RoleRecord => ({
  name,
  grants: grants.map((permission) => ({ permission })),
  denies: denies.map((permission) => ({ permission })),
  inherits,
});

function thrown(act: () => unknown): unknown {
  try {
    act();
  } catch (error) {
    return error;
  }
  throw new Error('expected a throw');
}

const policy = [
  role('reader', ['read:posts']),
  role('writer', ['write:posts'], ['reader']),
  role('editor', ['delete:posts:*'], ['writer'], ['delete:posts:pinned']),
];

describe('role graph', () => {
  it('lists every role name in definition order', () => {
    expect(compileRoles(policy).names).toEqual(['reader', 'writer', 'editor']);
  });

  it('expands inherited grants with the path from the assigned role to the holder', () => {
    const graph = compileRoles(policy);

    const expanded = graph.expand('editor').map((g) => [g.effect, g.grant.permission, g.path]);

    expect(expanded).toEqual([
      ['allow', 'delete:posts:*', ['editor']],
      ['deny', 'delete:posts:pinned', ['editor']],
      ['allow', 'write:posts', ['editor', 'writer']],
      ['allow', 'read:posts', ['editor', 'writer', 'reader']],
    ]);
  });

  it('counts a role reached twice (a diamond) once, by the first path', () => {
    const graph = compileRoles([
      role('base', ['read:posts']),
      role('left', [], ['base']),
      role('right', [], ['base']),
      role('top', [], ['left', 'right']),
    ]);

    expect(graph.expand('top').map((g) => g.path)).toEqual([['top', 'left', 'base']]);
  });

  it('answers has() and expands an unknown role to nothing', () => {
    const graph = compileRoles(policy);

    expect(graph.has('editor')).toBe(true);
    expect(graph.has('ghost')).toBe(false);
    expect(graph.expand('ghost')).toEqual([]);
  });

  it('rejects an inheritance cycle in the policy, naming the cycle', () => {
    const error = thrown(() =>
      compileRoles([role('editor', [], ['reviewer']), role('reviewer', [], ['editor'])]),
    );

    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).message).toBe(
      'roles: inheritance cycle editor -> reviewer -> editor',
    );
  });

  it('rejects a role that inherits from itself', () => {
    const error = thrown(() => compileRoles([role('loop', [], ['loop'])]));

    expect((error as ConfigError).message).toBe('roles: inheritance cycle loop -> loop');
  });

  it('rejects an unknown parent in the policy, naming the field and the role', () => {
    const error = thrown(() =>
      compileRoles([role('reader', []), role('editor', [], ['reader', 'ghost'])]),
    );

    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('roles.editor.inherits[1]');
    expect((error as ConfigError).message).toContain('ghost');
  });

  it.each([
    ['roles.a.grants[0].permission', [role('a', ['read'])]],
    ['roles.a.denies[0].permission', [role('a', [], [], ['read:*x'])]],
    ['roles.a', [role('a', []), role('a', [])]],
    ['roles[0].name', [role('', [])]],
    [
      'roles.a.grants[0].when.ip[0]',
      [{ name: 'a', grants: [{ permission: 'read:x', when: { ip: ['nope'] } }], inherits: [] }],
    ],
  ])('rejects a malformed policy role naming %s', (field, roles) => {
    const error = thrown(() => compileRoles(roles as RoleRecord[]));

    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe(field);
  });
});

describe('store roles', () => {
  it('replace the policy role of the same name', () => {
    const graph = compileRoles(policy, [role('reader', ['read:posts', 'read:comments'])]);

    expect(graph.expand('writer').map((g) => g.grant.permission)).toEqual([
      'write:posts',
      'read:posts',
      'read:comments',
    ]);
  });

  it('add roles that may inherit policy roles', () => {
    const graph = compileRoles(policy, [role('auditor', ['read:audit'], ['reader'])]);

    expect(graph.names).toEqual(['reader', 'writer', 'editor', 'auditor']);
    expect(graph.expand('auditor').map((g) => g.path)).toEqual([
      ['auditor'],
      ['auditor', 'reader'],
    ]);
  });

  it('leave the policy graph untouched', () => {
    compileRoles(policy, [role('reader', ['read:everything'])]);

    expect(
      compileRoles(policy)
        .expand('reader')
        .map((g) => g.grant.permission),
    ).toEqual(['read:posts']);
  });

  it('fail the load with StoreError when a replacement creates a cycle', () => {
    const error = thrown(() => compileRoles(policy, [role('reader', [], ['editor'])]));

    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe('store_invalid_record');
    expect((error as StoreError).message).toBe(
      'roles: inheritance cycle reader -> editor -> writer -> reader',
    );
  });

  it('fail the load with StoreError on an unknown parent', () => {
    const error = thrown(() => compileRoles(policy, [role('auditor', [], ['ghost'])]));

    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe('store_invalid_record');
    expect((error as StoreError).message).toContain('ghost');
  });

  it.each([
    ['grants not a list', [{ name: 'x', grants: 'read:posts', inherits: [] }]],
    ['inherits missing', [{ name: 'x', grants: [] }]],
    ['name missing', [{ grants: [], inherits: [] }]],
    ['duplicate name', [role('x', []), role('x', [])]],
    ['unreadable deny', [role('x', [], [], ['not a permission'])]],
  ])('fail the load with StoreError on a malformed record (%s)', (_, roles) => {
    const error = thrown(() => compileRoles(policy, roles as unknown as RoleRecord[]));

    expect(error).toBeInstanceOf(StoreError);
    expect((error as StoreError).code).toBe('store_invalid_record');
  });

  it('skip a grant with an invalid permission or condition, with a warning', () => {
    const graph = compileRoles(policy, [
      {
        name: 'x',
        grants: [
          { permission: 'read' },
          { permission: 'read:a', when: { ip: ['bad'] } },
          { permission: 'read:b' },
        ],
        inherits: [],
      },
    ]);

    expect(graph.expand('x').map((g) => g.grant.permission)).toEqual(['read:b']);
    expect(graph.warnings).toHaveLength(2);
  });

  it('keep a deny with an invalid condition, with a warning', () => {
    const graph = compileRoles(policy, [
      {
        name: 'x',
        grants: [],
        denies: [{ permission: 'read:a', when: { ip: ['bad'] } }],
        inherits: [],
      },
    ]);

    expect(graph.expand('x').map((g) => g.grant.permission)).toEqual(['read:a']);
    expect(graph.warnings).toHaveLength(1);
  });
});
