import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { encodeProxyV1, encodeProxyV2 } from '@ftp/session-core';
import { RawClient } from '../support/rawClient';
import { startTestServer, type TestServer } from '../support/server';

// PROXY-protocol trust (issue 12): the first header each trusted balancer address sends is logged (info), once per
// process, so an operator sees which addresses actually speak for clients.
let server: TestServer;
const FIRST = 'first PROXY protocol header from this trusted peer';

before(async () => {
  server = await startTestServer({ env: { FTP_PROXY_PROTOCOL_FROM: '127.0.0.1,127.0.0.5' } });
});
after(async () => {
  await server?.close();
});

/** A control connection from `balancer` that starts with `header`; resolves after the greeting. */
async function through(balancer: string, header?: Buffer): Promise<RawClient> {
  const client = await RawClient.connect(server.port, '127.0.0.1', balancer);
  if (header) client.send(header);
  assert.equal((await client.reply(5000)).code, 220);
  return client;
}

const v1 = (client: string) => encodeProxyV1({ source: { address: client, port: 40001 }, destination: { address: '127.0.0.1', port: 21 } });
const v2 = (client: string) => encodeProxyV2({ source: { address: client, port: 40002 }, destination: { address: '127.0.0.1', port: 21 } });

test('the first PROXY header of each trusted balancer is logged once; untrusted peers are not', async () => {
  const clients = [
    await through('127.0.0.1', v1('203.0.113.1')),
    await through('127.0.0.1', v2('203.0.113.2')),
    await through('127.0.0.1', v1('203.0.113.3')),
    await through('127.0.0.6'), // not a balancer: no header, no line
    await through('127.0.0.5', v2('198.51.100.7')),
    await through('127.0.0.5', v2('198.51.100.8')),
  ];
  const lines = server.logs.filter((l) => l.msg === FIRST);
  assert.deepEqual(
    lines.map((l) => [l.level, l.balancer, l.client, l.server, l.serverPort]),
    [
      [30, '127.0.0.1', '203.0.113.1', '127.0.0.1', 21],
      [30, '127.0.0.5', '198.51.100.7', '127.0.0.1', 21],
    ],
  );
  for (const client of clients) client.close();
});
