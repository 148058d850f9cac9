import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { connect } from 'node:net';
import { after, test } from 'node:test';
import { SpanKind, SpanStatusCode } from '@opentelemetry/api';
import { Redis } from 'ioredis';
import { UPLOAD_QUEUE } from '@ftp/upload-events';
import { freeLoopbackPort } from '../support/ftpsClient';
import { RawClient } from '../support/rawClient';
import { startTestServer } from '../support/server';
import { one, parentOf, scriptedUpload, startTestTracing } from '../support/tracing';

// Tracing is registered before any server starts, as services/ftp-edge/src/instrument.ts does in a real process, with
// the edge's context manager (no AsyncLocalStorage): every parent below is passed explicitly by the edge.
const tracing = startTestTracing({ context: 'sync' });
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

after(() => tracing.shutdown());

test('a scripted session is one trace: session → commands → login and transfer, all with the session id', async () => {
  tracing.reset();
  const server = await startTestServer();
  try {
    const payload = await scriptedUpload(server, 'traced.bin');
    const root = await tracing.waitForSpan('the session span', (s) => s.name === 'ftp session');
    const spans = (await tracing.spans()).filter((s) => s.spanContext().traceId === root.spanContext().traceId);

    // The tree.
    assert.equal(parentOf(root), '', 'the session is a root span');
    assert.equal(root.kind, SpanKind.SERVER);
    const commands = spans.filter((s) => parentOf(s) === root.spanContext().spanId);
    assert.deepEqual(
      commands.sort((a, b) => hr(a.startTime) - hr(b.startTime)).map((s) => s.name),
      ['ftp USER', 'ftp PASS', 'ftp EPSV', 'ftp STOR', 'ftp QUIT'],
    );
    const pass = one(spans, 'ftp PASS');
    const login = one(spans, 'ftp login');
    assert.equal(parentOf(login), pass.spanContext().spanId, 'the login attempt is a child of PASS');
    const stor = one(spans, 'ftp STOR');
    const transfer = one(spans, 'ftp transfer');
    assert.equal(parentOf(transfer), stor.spanContext().spanId, 'the transfer is a child of STOR');

    // Every span of the session carries its id; the session span the semantic-convention network attributes.
    const sessionId = root.attributes['ftp.session.id'];
    assert.match(String(sessionId), /^[0-9a-f-]{36}$/);
    for (const span of [root, ...commands, login, transfer]) assert.equal(span.attributes['ftp.session.id'], sessionId, span.name);
    assert.equal(root.attributes['client.address'], '127.0.0.1');
    assert.equal(typeof root.attributes['client.port'], 'number');
    assert.equal(root.attributes['server.address'], '127.0.0.1');
    assert.equal(root.attributes['server.port'], server.port);
    assert.equal(root.attributes['network.peer.address'], undefined, 'only behind a PROXY-protocol balancer, where it differs');
    assert.equal(root.attributes['enduser.id'], 'alice');

    // Commands: verb and final reply; login: result and user; transfer: bytes, direction, mode, TLS, path.
    assert.equal(stor.attributes['ftp.reply.code'], 226);
    assert.equal(one(spans, 'ftp EPSV').attributes['ftp.reply.code'], 229);
    assert.equal(login.attributes['ftp.login.result'], 'success');
    assert.equal(login.attributes['enduser.id'], 'alice');
    assert.equal(transfer.attributes['ftp.transfer.bytes'], payload.length);
    assert.equal(transfer.attributes['ftp.transfer.direction'], 'upload');
    assert.equal(transfer.attributes['ftp.transfer.mode'], 'passive');
    assert.equal(transfer.attributes['ftp.transfer.tls'], false);
    assert.equal(transfer.attributes['ftp.transfer.result'], 'ok');
    assert.equal(transfer.attributes['ftp.path'], '/traced.bin');
    assert.equal(typeof transfer.attributes['ftp.transfer.duration_ms'], 'number');
    for (const span of spans) assert.notEqual(span.status.code, SpanStatusCode.ERROR, `${span.name} succeeded`);

    // Nothing secret anywhere: no span name or attribute holds the password.
    for (const span of spans) {
      assert.ok(!span.name.includes(server.password));
      for (const value of Object.values(span.attributes)) assert.ok(!String(value).includes(server.password), `${span.name} leaks no password`);
    }

    // Log lines written inside a span carry its ids.
    const loginLine = server.logs.find((l) => l.event === 'login' && l.result === 'success');
    assert.equal(loginLine?.trace_id, root.spanContext().traceId);
    assert.equal(loginLine?.span_id, login.spanContext().spanId);
    const uploadLine = server.logs.find((l) => l.event === 'upload');
    assert.equal(uploadLine?.span_id, stor.spanContext().spanId);
  } finally {
    await server.close();
  }
});

test('a failed login and an unknown command are error spans; the password is never recorded', async () => {
  tracing.reset();
  const server = await startTestServer();
  try {
    const client = await RawClient.connect(server.port);
    assert.equal((await client.reply()).code, 220);
    await client.command('USER alice');
    assert.equal((await client.command('PASS not-the-password-s3cr3t')).code, 530);
    assert.equal((await client.command('FROB x')).code, 500);
    await client.command('QUIT');
    await client.waitClosed();
    await tracing.waitForSpan('the session span', (s) => s.name === 'ftp session');
    const spans = await tracing.spans();
    const login = one(spans, 'ftp login');
    assert.equal(login.attributes['ftp.login.result'], 'failure');
    assert.equal(login.status.code, SpanStatusCode.ERROR);
    assert.equal(one(spans, 'ftp PASS').attributes['ftp.reply.code'], 530);
    assert.equal(one(spans, 'ftp UNKNOWN').status.code, SpanStatusCode.ERROR, 'named from the command table, not the client');
    for (const span of spans) {
      assert.ok(!JSON.stringify({ n: span.name, a: span.attributes, e: span.events }).includes('s3cr3t'), `${span.name} leaks no password`);
    }
  } finally {
    await server.close();
  }
});

test('a relayed data connection: the transfer says relayed, the relaying replica has an `ftp relay` span of the same session', async () => {
  tracing.reset();
  const prefix = `test:tracing-relay:${randomUUID()}:`;
  const shared = { REDIS_URL, FTP_REDIS_PREFIX: prefix };
  const owner = await startTestServer({ env: { ...shared, FTP_HOST: '127.0.0.11', FTP_REPLICA_ID: 'owner', FTP_RELAY_PORT: String(await freeLoopbackPort()) } });
  const range = `${owner.config.pasvRange.min}-${owner.config.pasvRange.max}`;
  const peer = await startTestServer({
    env: { ...shared, FTP_HOST: '127.0.0.12', FTP_REPLICA_ID: 'peer', FTP_PASV_RANGE: range, FTP_RELAY_PORT: String(await freeLoopbackPort()) },
  });
  try {
    const client = await RawClient.connect(owner.port, '127.0.0.11', '127.0.0.1');
    await client.login(owner.user, owner.password);
    const reply = await client.command('EPSV');
    const port = Number(/\(\|\|\|(\d+)\|\)/.exec(reply.text)![1]);
    const data = connect({ host: '127.0.0.12', port, localAddress: '127.0.0.1' }); // the replica that did not lease it
    data.on('error', () => {});
    await new Promise((resolve) => data.once('connect', resolve));
    assert.equal((await client.command('STOR via-peer.bin')).code, 150);
    data.end(randomBytes(50_000));
    assert.equal((await client.reply(10_000)).code, 226);
    await client.command('QUIT');
    await client.waitClosed();

    const relay = await tracing.waitForSpan('the relay span', (s) => s.name === 'ftp relay');
    const transfer = await tracing.waitForSpan('the transfer span', (s) => s.name === 'ftp transfer');
    assert.equal(transfer.attributes['ftp.transfer.mode'], 'relayed');
    assert.equal(relay.attributes['ftp.session.id'], transfer.attributes['ftp.session.id'], 'one session id across both replicas');
    assert.equal(relay.attributes['ftp.relay.owner'], 'owner');
    assert.equal(relay.attributes['ftp.relay.result'], 'relayed');
    assert.equal(relay.attributes['client.address'], '127.0.0.1');
    assert.equal(relay.attributes['ftp.relay.bytes_from_client'], 50_000);
    assert.equal(parentOf(relay), '', 'a root span on the relaying replica');

    // Without AsyncLocalStorage, Redis calls still join the right spans: the edge runs them in the session's context.
    // The session span ends after the session's record is removed from Redis, a moment after the client saw the close.
    const sessionId = transfer.attributes['ftp.session.id'];
    await tracing.waitForSpan('the session span', (s) => s.name === 'ftp session' && s.attributes['ftp.session.id'] === sessionId);
    const spans = await tracing.spans();
    const redisUnder = (name: string) => {
      const parent = one(spans.filter((s) => s.attributes['ftp.session.id'] === transfer.attributes['ftp.session.id'] || s.name === 'ftp relay'), name);
      return spans.filter((s) => parentOf(s) === parent.spanContext().spanId && s.attributes['db.system.name'] === 'redis').length;
    };
    assert.ok(redisUnder('ftp session') >= 2, 'admission (with its ban check) and the close under the session');
    assert.ok(redisUnder('ftp login') >= 2, 'the ban check and the bind (after the password check awaited) under the login');
    assert.ok(redisUnder('ftp EPSV') >= 1, 'the lease under EPSV');
    // Lease releases of many sessions go to Redis together, a few milliseconds later: in no session's trace.
    assert.equal(redisUnder('ftp transfer'), 0, 'nothing in Redis during the transfer');
    assert.ok(redisUnder('ftp relay') >= 1, 'the lease lookup under the relay');
    const send = one(spans, `send ${UPLOAD_QUEUE}`);
    assert.equal(parentOf(send), transfer.spanContext().spanId, 'the publish is a child of the transfer (parent from the event)');
    for (const span of spans.filter((s) => s.attributes['db.system.name'] === 'redis')) {
      assert.match(String(span.attributes['db.query.text']), /^(\w+|evalsha [0-9a-f]{8}) \(\d+ args\)$/, 'no keys or values');
    }
  } finally {
    await Promise.all([owner.close(), peer.close()]);
    const admin = new Redis(REDIS_URL);
    const keys = await admin.keys(`${prefix}*`);
    if (keys.length) await admin.del(...keys);
    await admin.quit();
  }
});

const hr = (t: [number, number]) => t[0] * 1e9 + t[1];
