import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as protocol from './index';

test('index re-exports the public API', () => {
  const expected = [
    'COMMANDS',
    'CommandLineDecoder',
    'MLST_FACTS',
    'asciiFromNetwork',
    'asciiToNetwork',
    'formatEpsvReply',
    'formatFeatMlst',
    'formatListLine',
    'formatMdtm',
    'formatMlsxLine',
    'formatPasvReply',
    'formatReply',
    'lookupCommand',
    'normalizeAddress',
    'parseCommand',
    'parseEprtArgument',
    'parseEpsvArgument',
    'parseMdtm',
    'parsePortArgument',
    'selectMlstFacts',
  ];
  assert.deepEqual(Object.keys(protocol).sort(), expected.sort());
});

test('decoder, parser and table work together on a raw control stream', () => {
  const decoder = new protocol.CommandLineDecoder();
  const lines = decoder.push(Buffer.from('xpwd\r\nRETR  name \r\n'));
  const verbs = lines.map((l) => {
    assert.ok('text' in l);
    const { verb, arg } = protocol.parseCommand(l.text);
    const spec = protocol.lookupCommand(verb)!;
    return [spec.alias ?? spec.verb, arg];
  });
  assert.deepEqual(verbs, [
    ['PWD', ''],
    ['RETR', ' name '],
  ]);
});
