import assert from 'node:assert/strict';
import { test } from 'node:test';
import { storageCode } from './testFixture';
import { basenameOf, dirnameOf, resolveVirtualPath } from './virtualPath';

test('relative input joins the current directory', () => {
  assert.equal(resolveVirtualPath('/home/u', 'file.txt'), '/home/u/file.txt');
  assert.equal(resolveVirtualPath('/home/u', ''), '/home/u');
  assert.equal(resolveVirtualPath('/home/u', '.'), '/home/u');
  assert.equal(resolveVirtualPath('/home/u', '..'), '/home');
});

test('absolute input ignores the current directory', () => {
  assert.equal(resolveVirtualPath('/home/u', '/pub/x'), '/pub/x');
  assert.equal(resolveVirtualPath('/home/u', '/'), '/');
});

test('.. never climbs above /', () => {
  assert.equal(resolveVirtualPath('/', '../../etc/passwd'), '/etc/passwd');
  assert.equal(resolveVirtualPath('/home/u', '../../../../etc/passwd'), '/etc/passwd');
  assert.equal(resolveVirtualPath('/a', '/../x'), '/x');
  assert.equal(resolveVirtualPath('/', '..'), '/');
});

test('. and .. are resolved, repeated and trailing slashes collapsed', () => {
  assert.equal(resolveVirtualPath('/', 'a/./b//c/..'), '/a/b');
  assert.equal(resolveVirtualPath('/', '//a///b/'), '/a/b');
  assert.equal(resolveVirtualPath('/x/', 'y/'), '/x/y');
});

test('backslash is an ordinary name character', () => {
  assert.equal(resolveVirtualPath('/d', 'a\\..\\b'), '/d/a\\..\\b');
  assert.equal(resolveVirtualPath('/d', '..\\..\\etc'), '/d/..\\..\\etc');
});

test('NUL, CR and LF are rejected', () => {
  for (const bad of ['a\0b', 'a\rb', 'a\nb', '\0']) {
    assert.throws(() => resolveVirtualPath('/', bad), storageCode('bad-name'));
  }
  assert.throws(() => resolveVirtualPath('/x\n', 'a'), storageCode('bad-name'));
});

test('basenameOf and dirnameOf', () => {
  assert.equal(basenameOf('/a/b.txt'), 'b.txt');
  assert.equal(basenameOf('/a'), 'a');
  assert.equal(basenameOf('/'), '');
  assert.equal(dirnameOf('/a/b.txt'), '/a');
  assert.equal(dirnameOf('/a'), '/');
  assert.equal(dirnameOf('/'), '/');
});
