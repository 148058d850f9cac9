import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PROXY_TLV, encodeProxyV1, encodeProxyV2, parseProxyHeader, type ProxyHeader, type ProxyParse } from './proxyProtocol';

const SIGNATURE = '0d0a0d0a000d0a515549540a';
const hex = (text: string) => Buffer.from(text.replace(/\s+/g, ''), 'hex');
const ascii = (text: string) => Buffer.from(text, 'latin1');

function parsedOk(buf: Buffer): { header: ProxyHeader; length: number } {
  const result = parseProxyHeader(buf);
  assert.equal(result.status, 'ok', JSON.stringify(result));
  const { header, length } = result as Extract<ProxyParse, { status: 'ok' }>;
  return { header, length };
}

function reasonOf(buf: Buffer): string {
  const result = parseProxyHeader(buf);
  assert.equal(result.status, 'invalid', `${buf.toString('hex')} → ${JSON.stringify(result)}`);
  return (result as Extract<ProxyParse, { status: 'invalid' }>).reason;
}

/** A v2 header from its parts, so tests can state malformed lengths and families byte for byte. */
function v2(verCmd: number, famTransport: number, body: Buffer, declaredLength = body.length): Buffer {
  const fixed = hex(`${SIGNATURE} 00 00 0000`);
  fixed[12] = verCmd;
  fixed[13] = famTransport;
  fixed.writeUInt16BE(declaredLength, 14);
  return Buffer.concat([fixed, body]);
}

test('v2 round trip: TCP over IPv4 with TLVs', () => {
  const tlvs = new Map([
    [PROXY_TLV.AUTHORITY, ascii('ftp.example.com')],
    [0xe0, Buffer.from([1, 2, 3])],
    [PROXY_TLV.NOOP, Buffer.alloc(0)],
  ]);
  const buf = encodeProxyV2({ source: { address: '203.0.113.7', port: 50123 }, destination: { address: '10.0.0.5', port: 21 }, tlvs });
  assert.equal(buf[12], 0x21, 'version 2, PROXY');
  assert.equal(buf[13], 0x11, 'AF_INET, STREAM');
  const { header, length } = parsedOk(buf);
  assert.equal(length, buf.length);
  assert.deepEqual(header, {
    command: 'proxy',
    source: { address: '203.0.113.7', port: 50123 },
    destination: { address: '10.0.0.5', port: 21 },
    tlvs,
  });
});

test('v2 round trip: TCP over IPv6 with TLVs given as pairs, addresses in canonical text', () => {
  const buf = encodeProxyV2({
    source: { address: '2001:DB8:0:0:0:0:0:1', port: 0 },
    destination: { address: 'fe80::1:0:0:0%eth0', port: 65535 },
    tlvs: [[PROXY_TLV.UNIQUE_ID, ascii('abc')]],
  });
  assert.equal(buf[13], 0x21, 'AF_INET6, STREAM');
  const { header, length } = parsedOk(buf);
  assert.equal(length, buf.length);
  assert.deepEqual(header.source, { address: '2001:db8::1', port: 0 });
  assert.deepEqual(header.destination, { address: 'fe80::1:0:0:0', port: 65535 });
  assert.deepEqual([...header.tlvs], [[PROXY_TLV.UNIQUE_ID, ascii('abc')]]);
});

test('v2 IPv6 text follows RFC 5952: first longest zero run compressed, single zero words kept', () => {
  const cases: [string, string][] = [
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:0:0:1:0:0:0:1', '2001:0:0:1::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['0:0:0:0:0:0:0:0', '::'],
    ['::1', '::1'],
    ['::1.2.3.4', '::102:304'],
  ];
  for (const [input, canonical] of cases) {
    const buf = encodeProxyV2({ source: { address: input, port: 1 }, destination: { address: '::2', port: 2 } });
    assert.equal(parsedOk(buf).header.source?.address, canonical, input);
  }
});

test('v2 with one IPv4 and one IPv6 endpoint is sent as IPv6 and the IPv4 one comes back dotted', () => {
  const buf = encodeProxyV2({ source: { address: '192.0.2.1', port: 1000 }, destination: { address: '2001:db8::21', port: 21 } });
  assert.equal(buf[13], 0x21);
  assert.deepEqual(buf.subarray(16, 32), hex('0000 0000 0000 0000 0000 ffff c000 0201'));
  const { header } = parsedOk(buf);
  assert.deepEqual(header.source, { address: '192.0.2.1', port: 1000 });
  assert.deepEqual(header.destination, { address: '2001:db8::21', port: 21 });
});

test('v2 IPv4-mapped IPv6 addresses are reported as dotted IPv4', () => {
  const body = hex('0000 0000 0000 0000 0000 ffff 0a00 0001  0000 0000 0000 0000 0000 FFFF 0a00 0002  1f90 0015');
  const { header } = parsedOk(v2(0x21, 0x21, body));
  assert.deepEqual(header.source, { address: '10.0.0.1', port: 8080 });
  assert.deepEqual(header.destination, { address: '10.0.0.2', port: 21 });
});

test('a v2 header exactly as HAProxy sent it (send-proxy-v2), followed by the proxied request', () => {
  // Captured from HAProxy in front of an HTTP server: 172.19.0.1:42578 → 172.19.0.3:80.
  const wire = hex(`${SIGNATURE} 21 11 000c ac130001 ac130003 a652 0050 474554202f20485454502f312e310d0a`);
  const { header, length } = parsedOk(wire);
  assert.equal(length, 28);
  assert.equal(wire.subarray(length).toString(), 'GET / HTTP/1.1\r\n');
  assert.deepEqual(header, {
    command: 'proxy',
    source: { address: '172.19.0.1', port: 42578 },
    destination: { address: '172.19.0.3', port: 80 },
    tlvs: new Map(),
  });
});

test('a v2 header shaped like AWS NLB sends it: IPv4 plus the VPC endpoint TLV (0xEA)', () => {
  const endpoint = ascii('vpce-08d2bf15fac5001c9');
  const wire = hex(`${SIGNATURE} 21 11 0026  c0a80101 c0a80a0a  d431 0015  ea 0017 01 ${endpoint.toString('hex')}`);
  const { header, length } = parsedOk(wire);
  assert.equal(length, wire.length);
  assert.deepEqual(header.source, { address: '192.168.1.1', port: 54321 });
  assert.deepEqual(header.destination, { address: '192.168.10.10', port: 21 });
  assert.deepEqual(header.tlvs.get(0xea), Buffer.concat([Buffer.from([1]), endpoint]));
});

test('v2 LOCAL (a balancer health check) has no endpoints; its block is skipped whatever it holds', () => {
  // HAProxy's health-check header: LOCAL, UNSPEC, no body.
  const bare = parsedOk(hex(`${SIGNATURE} 20 00 0000`));
  assert.deepEqual(bare, { header: { command: 'local', tlvs: new Map() }, length: 16 });
  // A LOCAL with an address block, a TLV and even an undefined family: the spec says ignore it all.
  const body = hex('7f000001 7f000001 0001 0002 01 0002 6832');
  assert.deepEqual(parsedOk(v2(0x20, 0x11, body)), { header: { command: 'local', tlvs: new Map() }, length: 16 + body.length });
  assert.equal(parsedOk(v2(0x20, 0xff, Buffer.alloc(3))).header.command, 'local');
});

test('v2 PROXY over families without an IP address keeps the socket addresses (no source/destination)', () => {
  const unspec = parsedOk(v2(0x21, 0x00, Buffer.alloc(0)));
  assert.deepEqual(unspec.header, { command: 'proxy', tlvs: new Map() });

  const unixBlock = Buffer.alloc(216);
  unixBlock.write('/run/haproxy.sock', 0);
  const unix = parsedOk(v2(0x21, 0x31, Buffer.concat([unixBlock, hex('05 0002 6964')])));
  assert.equal(unix.length, 16 + 216 + 5);
  assert.equal(unix.header.source, undefined);
  assert.deepEqual(unix.header.tlvs.get(PROXY_TLV.UNIQUE_ID), ascii('id'));

  const udp = parsedOk(v2(0x21, 0x12, hex('01020304 05060708 0001 0002')));
  assert.equal(udp.header.source, undefined);
  assert.equal(udp.header.destination, undefined);
});

test('v2 bytes after the address block are TLVs; a repeated TLV type keeps its last value', () => {
  const { header } = parsedOk(v2(0x21, 0x11, hex('01020304 05060708 0001 0002  e0 0001 61  e0 0001 62')));
  assert.deepEqual(header.tlvs.get(0xe0), ascii('b'));
});

test('v2 TLV values are copies, not views of the read buffer', () => {
  const buf = encodeProxyV2({ source: { address: '1.1.1.1', port: 1 }, destination: { address: '2.2.2.2', port: 2 }, tlvs: [[0xe1, ascii('xyz')]] });
  const { header } = parsedOk(buf);
  buf.fill(0);
  assert.deepEqual(header.tlvs.get(0xe1), ascii('xyz'));
});

test('v1 round trip: TCP4', () => {
  const buf = encodeProxyV1({ source: { address: '192.168.0.1', port: 56324 }, destination: { address: '192.168.0.11', port: 21 } });
  assert.equal(buf.toString(), 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 21\r\n');
  assert.deepEqual(parsedOk(buf), {
    header: {
      command: 'proxy',
      source: { address: '192.168.0.1', port: 56324 },
      destination: { address: '192.168.0.11', port: 21 },
      tlvs: new Map(),
    },
    length: buf.length,
  });
});

test('v1 round trip: TCP6, and TCP6 text in any valid spelling comes back canonical', () => {
  const buf = encodeProxyV1({ source: { address: '2001:db8::1', port: 0 }, destination: { address: '2001:db8::2', port: 65535 } });
  assert.equal(buf.toString(), 'PROXY TCP6 2001:db8::1 2001:db8::2 0 65535\r\n');
  assert.deepEqual(parsedOk(buf).header.destination, { address: '2001:db8::2', port: 65535 });

  const spelled = parsedOk(ascii('PROXY TCP6 2001:0DB8:0000:0000:0000:0000:0000:0001 ::FFFF:10.1.2.3 4000 21\r\n'));
  assert.deepEqual(spelled.header.source, { address: '2001:db8::1', port: 4000 });
  assert.deepEqual(spelled.header.destination, { address: '10.1.2.3', port: 21 }, 'IPv4-mapped → dotted IPv4');
});

test('v1 with mixed families is sent as TCP6 with the IPv4 endpoint mapped', () => {
  const buf = encodeProxyV1({ source: { address: '192.0.2.1', port: 1 }, destination: { address: '2001:db8::1', port: 2 } });
  assert.equal(buf.toString(), 'PROXY TCP6 ::ffff:192.0.2.1 2001:db8::1 1 2\r\n');
  assert.equal(parsedOk(buf).header.source?.address, '192.0.2.1');
});

test('v1 UNKNOWN has no endpoints and ignores whatever precedes the CRLF', () => {
  assert.deepEqual(parsedOk(encodeProxyV1()), { header: { command: 'proxy', tlvs: new Map() }, length: 15 });
  const withJunk = ascii('PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\nUSER x\r\n');
  const { header, length } = parsedOk(withJunk);
  assert.equal(header.source, undefined);
  assert.equal(withJunk.subarray(length).toString(), 'USER x\r\n');
});

test('v1 line of exactly 107 bytes is accepted, 108 is not', () => {
  const line = (bytes: number) => ascii(`PROXY UNKNOWN ${'x'.repeat(bytes - 16)}\r\n`);
  assert.equal(line(107).length, 107);
  assert.equal(parsedOk(line(107)).length, 107);
  assert.match(reasonOf(line(108)), /107/);
});

test('every prefix of a valid header is incomplete; the whole one is ok and leaves trailing bytes alone', () => {
  const headers: [string, Buffer][] = [
    ['v1 TCP4', encodeProxyV1({ source: { address: '1.2.3.4', port: 5 }, destination: { address: '6.7.8.9', port: 10 } })],
    ['v1 TCP6', encodeProxyV1({ source: { address: '2001:db8::1', port: 5 }, destination: { address: '::1', port: 10 } })],
    ['v1 UNKNOWN', encodeProxyV1()],
    ['v2 LOCAL', hex(`${SIGNATURE} 20 00 0000`)],
    [
      'v2 IPv4 with TLVs',
      encodeProxyV2({ source: { address: '1.2.3.4', port: 5 }, destination: { address: '6.7.8.9', port: 10 }, tlvs: [[1, ascii('ftp')], [4, Buffer.alloc(0)]] }),
    ],
    ['v2 IPv6', encodeProxyV2({ source: { address: '2001:db8::1', port: 5 }, destination: { address: '::1', port: 10 } })],
  ];
  const trailing = ascii('USER anonymous\r\n');
  for (const [name, header] of headers) {
    for (let n = 0; n < header.length; n++) {
      assert.deepEqual(parseProxyHeader(header.subarray(0, n)), { status: 'incomplete' }, `${name}, first ${n} bytes`);
    }
    assert.equal(parsedOk(header).length, header.length, name);
    assert.equal(parsedOk(Buffer.concat([header, trailing])).length, header.length, `${name} with trailing bytes`);
  }
});

test('not a PROXY header at all: refused from the first byte that cannot start one', () => {
  assert.match(reasonOf(ascii('G')), /not a PROXY/);
  assert.match(reasonOf(ascii('USER anonymous\r\n')), /not a PROXY/);
  assert.match(reasonOf(Buffer.from([0x16, 0x03, 0x01])), /not a PROXY/, 'a TLS ClientHello');
  assert.match(reasonOf(ascii('PROXZ')), /not a PROXY/);
  assert.match(reasonOf(ascii('proxy TCP4 1.2.3.4 1.2.3.4 1 2\r\n')), /not a PROXY/, 'the keyword is upper case');
  assert.match(reasonOf(hex('0d0a0d0a01')), /not a PROXY/, 'v2 signature broken at byte 5');
  assert.match(reasonOf(hex(`0d0a0d0a000d0a515549540b 21 11 000c`)), /not a PROXY/, 'v2 signature broken at byte 12');
});

test('v2 with a bad version, command, family or transport is refused as soon as that byte arrives', () => {
  assert.match(reasonOf(hex(`${SIGNATURE} 11`)), /version 1/);
  assert.match(reasonOf(hex(`${SIGNATURE} 31`)), /version 3/);
  assert.match(reasonOf(hex(`${SIGNATURE} 22`)), /command 2/);
  assert.match(reasonOf(hex(`${SIGNATURE} 21 41`)), /family\/transport byte 0x41/);
  assert.match(reasonOf(hex(`${SIGNATURE} 21 13`)), /family\/transport byte 0x13/);
});

test('v2 declared length: refused above 4096 bytes and below what the address family needs', () => {
  assert.match(reasonOf(hex(`${SIGNATURE} 21 11 1001`)), /4097 bytes exceeds 4096/);
  assert.match(reasonOf(hex(`${SIGNATURE} 20 00 ffff`)), /exceeds/, 'even for LOCAL');
  assert.match(reasonOf(v2(0x21, 0x11, hex('01020304 05060708'))), /too short for the 12-byte address block/);
  assert.match(reasonOf(v2(0x21, 0x21, Buffer.alloc(12))), /too short for the 36-byte/);
  assert.match(reasonOf(v2(0x21, 0x31, Buffer.alloc(108))), /too short for the 216-byte/);
});

test('v2 address block truncated by the connection is incomplete, not ok, until the declared length arrives', () => {
  const declared12 = v2(0x21, 0x11, hex('01020304 0506'), 12);
  assert.deepEqual(parseProxyHeader(declared12), { status: 'incomplete' });
});

test('v2 TLV area that does not add up is refused', () => {
  const block = '01020304 05060708 0001 0002';
  assert.match(reasonOf(v2(0x21, 0x11, hex(`${block} e0 000a 01020304`))), /TLV 0xe0 overruns/);
  assert.match(reasonOf(v2(0x21, 0x11, hex(`${block} 01 0001 61  e0 ffff`))), /TLV 0xe0 overruns/);
  assert.match(reasonOf(v2(0x21, 0x11, hex(`${block} e0 00`))), /TLV at offset 0 is cut short/);
  assert.match(reasonOf(v2(0x21, 0x11, hex(`${block} 04 0000 e0`))), /TLV at offset 3 is cut short/);
});

test('v1 addresses must be valid and of the announced family', () => {
  const cases: [string, RegExp][] = [
    ['PROXY TCP4 1.2.3.256 1.2.3.4 1 2', /source "1.2.3.256" is not an IPv4/],
    ['PROXY TCP4 1.2.3.4 1.2.3 1 2', /destination "1.2.3" is not an IPv4/],
    ['PROXY TCP4 010.0.0.1 1.2.3.4 1 2', /not an IPv4/],
    ['PROXY TCP4 ::1 1.2.3.4 1 2', /not an IPv4/],
    ['PROXY TCP6 1.2.3.4 ::1 1 2', /not an IPv6/],
    ['PROXY TCP6 fe80::1%eth0 ::1 1 2', /not an IPv6/],
    ['PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2', /not an IPv6/],
    ['PROXY TCP4 localhost 1.2.3.4 1 2', /not an IPv4/],
  ];
  for (const [line, reason] of cases) assert.match(reasonOf(ascii(`${line}\r\n`)), reason, line);
});

test('v1 ports must be plain decimal 0-65535', () => {
  for (const port of ['70000', '65536', '080', '+80', '-1', '0x50', '8O', '1e3', '']) {
    assert.match(reasonOf(ascii(`PROXY TCP4 1.2.3.4 5.6.7.8 ${port} 21\r\n`)), /source port/, port);
    assert.match(reasonOf(ascii(`PROXY TCP4 1.2.3.4 5.6.7.8 21 ${port}\r\n`)), /destination port/, port);
  }
});

test('v1 field layout: protocol known, exactly four fields, single spaces', () => {
  assert.match(reasonOf(ascii('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n')), /unknown v1 protocol "UDP4"/);
  assert.match(reasonOf(ascii('PROXY UD')), /unknown v1 protocol "UD"/, 'refused as soon as no protocol can match');
  assert.match(reasonOf(ascii('PROXY TCP5')), /unknown v1 protocol "TCP5"/, 'refused before the line ends');
  assert.match(reasonOf(ascii('PROXY UNKNOWNX')), /unknown v1 protocol/);
  assert.match(reasonOf(ascii('PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n')), /unknown v1 protocol ""/);
  assert.match(reasonOf(ascii('PROXY TCP4\r\n')), /needs 4 fields/);
  assert.match(reasonOf(ascii('PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n')), /needs 4 fields/);
  assert.match(reasonOf(ascii('PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n')), /needs 4 fields/);
  assert.match(reasonOf(ascii('PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n')), /needs 4 fields/);
  assert.match(reasonOf(ascii('PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n')), /needs 4 fields/);
});

test('v1 line framing: CRLF within 107 bytes, printable ASCII only', () => {
  assert.deepEqual(parseProxyHeader(ascii(`PROXY TCP4 ${'1'.repeat(95)}`)), { status: 'incomplete' }, '106 bytes');
  assert.match(reasonOf(ascii(`PROXY TCP4 ${'1'.repeat(96)}`)), /no CRLF within 107 bytes/, 'refused at byte 107, not later');
  assert.match(reasonOf(ascii(`PROXY UNKNOWN ${'x'.repeat(92)}\r`)), /no CRLF within 107/, 'CR as byte 107 leaves no room for LF');
  assert.match(reasonOf(ascii('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n')), /not printable/, 'LF without CR');
  assert.match(reasonOf(ascii('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX')), /CR without LF/);
  assert.match(reasonOf(ascii('PROXY TCP4 1.2.3.4\t5.6.7.8 1 2\r\n')), /not printable/);
  assert.match(reasonOf(Buffer.from('PROXY UNKNOWN é\r\n', 'utf8')), /not printable/);
});

test('encoders refuse what cannot be sent', () => {
  const ok = { address: '1.2.3.4', port: 21 };
  assert.throws(() => encodeProxyV2({ source: { address: 'example.com', port: 1 }, destination: ok }), TypeError);
  assert.throws(() => encodeProxyV2({ source: { address: '', port: 1 }, destination: ok }), TypeError);
  assert.throws(() => encodeProxyV2({ source: { address: '1.2.3.4', port: 70000 }, destination: ok }), RangeError);
  assert.throws(() => encodeProxyV2({ source: ok, destination: { address: '1.2.3.4', port: -1 } }), RangeError);
  assert.throws(() => encodeProxyV2({ source: ok, destination: ok, tlvs: [[256, Buffer.alloc(0)]] }), RangeError);
  assert.throws(() => encodeProxyV2({ source: ok, destination: ok, tlvs: [[0xe0, Buffer.alloc(4096)]] }), /exceeds 4096/);
  assert.throws(() => encodeProxyV1({ source: ok, destination: { address: 'nope', port: 1 } }), TypeError);
});
