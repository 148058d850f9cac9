import { test } from 'node:test';
import assert from 'node:assert/strict';
import { COMMANDS, lookupCommand, parseCommand } from './command';

test('parseCommand upper-cases the verb and keeps the argument verbatim', () => {
  assert.deepEqual(parseCommand('retr file.txt'), { verb: 'RETR', arg: 'file.txt' });
  assert.deepEqual(parseCommand('STOR  leading and trailing  '), { verb: 'STOR', arg: ' leading and trailing  ' });
  assert.deepEqual(parseCommand('CWD a b'), { verb: 'CWD', arg: 'a b' });
});

test('parseCommand without a space gives an empty argument', () => {
  assert.deepEqual(parseCommand('pwd'), { verb: 'PWD', arg: '' });
  assert.deepEqual(parseCommand(''), { verb: '', arg: '' });
  // One space and nothing after is an empty argument, not a missing verb.
  assert.deepEqual(parseCommand('LIST '), { verb: 'LIST', arg: '' });
});

test('parseCommand removes only a trailing CR', () => {
  assert.deepEqual(parseCommand('NOOP\r'), { verb: 'NOOP', arg: '' });
  assert.deepEqual(parseCommand('DELE x \r'), { verb: 'DELE', arg: 'x ' });
  assert.deepEqual(parseCommand('DELE x\r\r'), { verb: 'DELE', arg: 'x\r' });
});

test('parseCommand returns malformed verbs unchanged so the session can reply 500', () => {
  assert.deepEqual(parseCommand('ABCDEFGHIJKLMNOPQRSTUVWXYZ x'), { verb: 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', arg: 'x' });
  assert.deepEqual(parseCommand('h3llo! x'), { verb: 'H3LLO!', arg: 'x' });
  assert.equal(lookupCommand(parseCommand('h3llo! x').verb), undefined);
});

test('the table covers every required verb with a consistent spec', () => {
  const verbs = (
    'USER PASS ACCT QUIT REIN SYST NOOP HELP STAT PWD XPWD CWD XCWD CDUP XCUP MKD XMKD RMD XRMD DELE RNFR RNTO ' +
    'TYPE MODE STRU ALLO PORT PASV EPRT EPSV LIST NLST RETR STOR STOU APPE REST ABOR FEAT OPTS SIZE MDTM MFMT ' +
    'MLSD MLST HOST HASH AUTH PBSZ PROT CCC CLNT SITE AVBL'
  ).split(' ');
  assert.deepEqual(Object.keys(COMMANDS).sort(), [...verbs].sort());
  for (const verb of verbs) {
    const spec = COMMANDS[verb];
    assert.equal(spec.verb, verb);
    assert.ok(['none', 'optional', 'required'].includes(spec.arg), verb);
    assert.ok(spec.help.length > 0, verb);
  }
});

test('before login only the login, its TLS handshake and its negotiation are allowed', () => {
  const preLogin = 'USER PASS ACCT QUIT FEAT OPTS HOST AUTH PBSZ PROT CLNT REIN'.split(' ');
  const allowed = Object.values(COMMANDS)
    .filter((s) => !s.needsLogin)
    .map((s) => s.verb);
  assert.deepEqual(allowed.sort(), preLogin.sort());
});

test('lookupCommand follows aliases and copies the canonical rules', () => {
  for (const [x, canonical] of [
    ['XPWD', 'PWD'],
    ['XCWD', 'CWD'],
    ['XCUP', 'CDUP'],
    ['XMKD', 'MKD'],
    ['XRMD', 'RMD'],
  ]) {
    const spec = lookupCommand(x)!;
    assert.equal(spec.verb, x);
    assert.equal(spec.alias, canonical);
    assert.equal(spec.alias ?? spec.verb, canonical);
    assert.equal(spec.arg, COMMANDS[canonical].arg);
    assert.equal(spec.needsLogin, COMMANDS[canonical].needsLogin);
  }
  assert.equal(lookupCommand('PWD')!.alias, undefined);
});

test('lookupCommand is case-insensitive and ignores unknown or prototype names', () => {
  assert.equal(lookupCommand('retr')!.verb, 'RETR');
  assert.equal(lookupCommand('FOO'), undefined);
  assert.equal(lookupCommand('constructor'), undefined);
  assert.equal(lookupCommand('__proto__'), undefined);
  assert.equal(lookupCommand('hasOwnProperty'), undefined);
});

test('argument arity matches RFC syntax for representative commands', () => {
  assert.equal(lookupCommand('PASV')!.arg, 'none');
  assert.equal(lookupCommand('RETR')!.arg, 'required');
  assert.equal(lookupCommand('LIST')!.arg, 'optional');
  assert.equal(lookupCommand('EPSV')!.arg, 'optional');
  assert.equal(lookupCommand('MLST')!.arg, 'optional');
});
