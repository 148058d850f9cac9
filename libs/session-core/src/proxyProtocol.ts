/**
 * The PROXY protocol (HAProxy, versions 1 and 2): the header a load balancer sends first on a connection so the
 * server learns the real client address. Parsing answers 'incomplete' until it has a whole header, and 'invalid'
 * as soon as the bytes read cannot become one, so a reader never waits on garbage.
 * Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
 */
import { isIPv4, isIPv6 } from 'node:net';
import { normalizeAddress } from './address';

export interface ProxyEndpoint {
  address: string;
  port: number;
}

export interface ProxyHeader {
  /** 'local': the balancer's own connection (a health check); the socket's addresses are the real ones. */
  command: 'proxy' | 'local';
  /** Absent for v1 UNKNOWN, v2 LOCAL and v2 families without an IP address (UNSPEC, UNIX, UDP): keep the socket's. */
  source?: ProxyEndpoint;
  destination?: ProxyEndpoint;
  /** v2 type-length-value extensions by type (a repeated type keeps its last value); always empty for v1. */
  tlvs: Map<number, Buffer>;
}

export type ProxyParse =
  | { status: 'incomplete' }
  | { status: 'invalid'; reason: string }
  | { status: 'ok'; header: ProxyHeader; length: number };

/** TLV types the spec defines (PP2_TYPE_*). SSL carries sub-TLVs, left unparsed in its value. */
export const PROXY_TLV = {
  ALPN: 0x01,
  AUTHORITY: 0x02,
  CRC32C: 0x03,
  NOOP: 0x04,
  UNIQUE_ID: 0x05,
  SSL: 0x20,
  NETNS: 0x30,
} as const;

/** A v1 line, CRLF included, never exceeds 107 bytes (spec 2.1). */
const V1_MAX_BYTES = 107;
const V1_PREFIX = Buffer.from('PROXY ', 'latin1');
const V1_PROTOCOLS = ['TCP4', 'TCP6', 'UNKNOWN'];

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
/** Signature, version/command, family/transport, 2-byte length. */
const V2_FIXED_BYTES = 16;
/** Cap on the variable part: real headers are well under 1 KiB, and the reader buffers all of it. */
const V2_MAX_PAYLOAD = 4096;
const V2_VERSION = 2;
const CMD_LOCAL = 0;
const CMD_PROXY = 1;
const AF_UNSPEC = 0;
const AF_INET = 1;
const AF_INET6 = 2;
const AF_UNIX = 3;
const TRANSPORT_STREAM = 1;
/** Highest transport the spec defines (DGRAM); anything above must be rejected. */
const TRANSPORT_MAX = 2;
/** Bytes of the address block (both addresses and, for IP, both ports) per family. */
const ADDRESS_BLOCK_BYTES: Record<number, number> = { [AF_UNSPEC]: 0, [AF_INET]: 12, [AF_INET6]: 36, [AF_UNIX]: 216 };

const CR = 0x0d;
const LF = 0x0a;

const INCOMPLETE: ProxyParse = { status: 'incomplete' };
const invalid = (reason: string): ProxyParse => ({ status: 'invalid', reason });

/** Reads a PROXY header (v1 or v2) at the start of `buf`; `length` is how many bytes it took. */
export function parseProxyHeader(buf: Buffer): ProxyParse {
  if (buf.length === 0) return INCOMPLETE;
  if (buf[0] === V1_PREFIX[0]) return parseV1(buf);
  if (buf[0] === V2_SIGNATURE[0]) return parseV2(buf);
  return invalid('not a PROXY protocol header');
}

function parseV1(buf: Buffer): ProxyParse {
  const end = Math.min(buf.length, V1_MAX_BYTES);
  for (let i = 0; i < end; i++) {
    const b = buf[i];
    if (i < V1_PREFIX.length) {
      if (b !== V1_PREFIX[i]) return invalid('not a PROXY protocol header');
    } else if (b === CR) {
      if (i + 1 >= V1_MAX_BYTES) break;
      if (i + 1 === buf.length) return INCOMPLETE;
      if (buf[i + 1] !== LF) return invalid('v1 header has a CR without LF');
      return parseV1Line(buf.toString('latin1', V1_PREFIX.length, i), i + 2);
    } else if (b < 0x20 || b > 0x7e) {
      return invalid('v1 header has a byte that is not printable ASCII');
    }
  }
  if (buf.length >= V1_MAX_BYTES) return invalid(`v1 header has no CRLF within ${V1_MAX_BYTES} bytes`);
  // Fail a wrong protocol word now rather than after the balancer's next bytes (or the timeout).
  const word = buf.toString('latin1', V1_PREFIX.length).split(' ')[0];
  const wordEnded = buf.includes(0x20, V1_PREFIX.length);
  const known = wordEnded ? V1_PROTOCOLS.includes(word) : V1_PROTOCOLS.some((p) => p.startsWith(word));
  return known ? INCOMPLETE : invalid(`unknown v1 protocol "${word}"`);
}

/** `rest` is the line after "PROXY " without its CRLF. */
function parseV1Line(rest: string, length: number): ProxyParse {
  const fields = rest.split(' ');
  const [protocol, source, destination, sourcePort, destinationPort] = fields;
  // The spec lets UNKNOWN carry anything up to the CRLF, and the receiver ignores it.
  if (protocol === 'UNKNOWN') return { status: 'ok', header: { command: 'proxy', tlvs: new Map() }, length };
  if (protocol !== 'TCP4' && protocol !== 'TCP6') return invalid(`unknown v1 protocol "${protocol}"`);
  if (fields.length !== 5) return invalid(`v1 ${protocol} needs 4 fields separated by single spaces`);
  const family = protocol === 'TCP4' ? 'IPv4' : 'IPv6';
  const canonical = protocol === 'TCP4' ? canonicalIPv4 : canonicalIPv6;
  const src = canonical(source);
  const dst = canonical(destination);
  if (src === undefined) return invalid(`v1 source "${source}" is not an ${family} address`);
  if (dst === undefined) return invalid(`v1 destination "${destination}" is not an ${family} address`);
  const srcPort = parseV1Port(sourcePort);
  const dstPort = parseV1Port(destinationPort);
  if (srcPort === undefined) return invalid(`v1 source port "${sourcePort}" is not 0-65535`);
  if (dstPort === undefined) return invalid(`v1 destination port "${destinationPort}" is not 0-65535`);
  const header: ProxyHeader = {
    command: 'proxy',
    source: { address: src, port: srcPort },
    destination: { address: dst, port: dstPort },
    tlvs: new Map(),
  };
  return { status: 'ok', header, length };
}

/** Decimal without leading zeros, as the spec asks (no octal confusion). */
function parseV1Port(text: string): number | undefined {
  if (!/^(0|[1-9]\d{0,4})$/.test(text)) return undefined;
  const port = Number(text);
  return port <= 65535 ? port : undefined;
}

function canonicalIPv4(text: string): string | undefined {
  // node's isIPv4 already refuses leading zeros, so valid text is canonical.
  return isIPv4(text) ? text : undefined;
}

function canonicalIPv6(text: string): string | undefined {
  // isIPv6 accepts a zone id (fe80::1%eth0), which no header can meaningfully carry.
  if (!isIPv6(text) || text.includes('%')) return undefined;
  return ipv6Text(ipv6Bytes(text));
}

function parseV2(buf: Buffer): ProxyParse {
  const known = Math.min(buf.length, V2_SIGNATURE.length);
  if (buf.compare(V2_SIGNATURE, 0, known, 0, known) !== 0) return invalid('not a PROXY protocol header');
  if (buf.length <= 12) return INCOMPLETE;
  const version = buf[12] >> 4;
  const command = buf[12] & 0x0f;
  if (version !== V2_VERSION) return invalid(`unsupported v2 version ${version}`);
  if (command !== CMD_LOCAL && command !== CMD_PROXY) return invalid(`unknown v2 command ${command}`);
  if (buf.length <= 13) return INCOMPLETE;
  const family = buf[13] >> 4;
  const transport = buf[13] & 0x0f;
  // LOCAL: the spec says to ignore the family and discard the block, whatever it holds.
  const local = command === CMD_LOCAL;
  if (!local && (!(family in ADDRESS_BLOCK_BYTES) || transport > TRANSPORT_MAX)) {
    return invalid(`undefined v2 family/transport byte 0x${buf[13].toString(16).padStart(2, '0')}`);
  }
  if (buf.length < V2_FIXED_BYTES) return INCOMPLETE;
  const payload = buf.readUInt16BE(14);
  if (payload > V2_MAX_PAYLOAD) return invalid(`v2 header of ${payload} bytes exceeds ${V2_MAX_PAYLOAD}`);
  const addressBytes = local ? 0 : ADDRESS_BLOCK_BYTES[family];
  if (payload < addressBytes) return invalid(`v2 length ${payload} is too short for the ${addressBytes}-byte address block`);
  const length = V2_FIXED_BYTES + payload;
  if (buf.length < length) return INCOMPLETE;
  if (local) return { status: 'ok', header: { command: 'local', tlvs: new Map() }, length };

  const tlvs = parseTlvs(buf.subarray(V2_FIXED_BYTES + addressBytes, length));
  if (typeof tlvs === 'string') return invalid(tlvs);
  const header: ProxyHeader = { command: 'proxy', tlvs };
  if (transport === TRANSPORT_STREAM && (family === AF_INET || family === AF_INET6)) {
    const size = family === AF_INET ? 4 : 16;
    const text = (at: number) => (family === AF_INET ? ipv4Text(buf, at) : ipv6Text(buf.subarray(at, at + size)));
    const ports = V2_FIXED_BYTES + 2 * size;
    header.source = { address: text(V2_FIXED_BYTES), port: buf.readUInt16BE(ports) };
    header.destination = { address: text(V2_FIXED_BYTES + size), port: buf.readUInt16BE(ports + 2) };
  }
  return { status: 'ok', header, length };
}

/** The TLVs after the address block, or why they are malformed. */
function parseTlvs(area: Buffer): Map<number, Buffer> | string {
  const tlvs = new Map<number, Buffer>();
  let at = 0;
  while (at < area.length) {
    if (at + 3 > area.length) return `v2 TLV at offset ${at} is cut short`;
    const type = area[at];
    const end = at + 3 + area.readUInt16BE(at + 1);
    if (end > area.length) return `v2 TLV 0x${type.toString(16).padStart(2, '0')} overruns the header`;
    // A copy: the header outlives the read buffer it came from.
    tlvs.set(type, Buffer.from(area.subarray(at + 3, end)));
    at = end;
  }
  return tlvs;
}

export interface ProxyV2Input {
  source: ProxyEndpoint;
  destination: ProxyEndpoint;
  tlvs?: ReadonlyMap<number, Buffer> | ReadonlyArray<readonly [number, Buffer]>;
}

/** A v2 PROXY header for a TCP connection; an IPv4 endpoint beside an IPv6 one is sent as `::ffff:a.b.c.d`. */
export function encodeProxyV2(header: ProxyV2Input): Buffer {
  const [src, dst] = endpointBytes(header.source, header.destination);
  const tlvs: Buffer[] = [];
  for (const [type, value] of header.tlvs ?? []) {
    if (!Number.isInteger(type) || type < 0 || type > 0xff) throw new RangeError(`invalid TLV type ${type}`);
    if (value.length > 0xffff) throw new RangeError(`TLV 0x${type.toString(16)} value is longer than 65535 bytes`);
    const head = Buffer.alloc(3);
    head[0] = type;
    head.writeUInt16BE(value.length, 1);
    tlvs.push(head, value);
  }
  const ports = Buffer.alloc(4);
  ports.writeUInt16BE(checkPort(header.source.port), 0);
  ports.writeUInt16BE(checkPort(header.destination.port), 2);
  const body = Buffer.concat([src, dst, ports, ...tlvs]);
  // Never emit what parseProxyHeader would refuse.
  if (body.length > V2_MAX_PAYLOAD) throw new RangeError(`PROXY v2 header of ${body.length} bytes exceeds ${V2_MAX_PAYLOAD}`);
  const fixed = Buffer.alloc(V2_FIXED_BYTES);
  V2_SIGNATURE.copy(fixed);
  fixed[12] = (V2_VERSION << 4) | CMD_PROXY;
  fixed[13] = ((src.length === 4 ? AF_INET : AF_INET6) << 4) | TRANSPORT_STREAM;
  fixed.writeUInt16BE(body.length, 14);
  return Buffer.concat([fixed, body]);
}

/** A v1 line: TCP4 or TCP6 by the addresses (mixed → IPv6), or `PROXY UNKNOWN` without endpoints. */
export function encodeProxyV1(header?: { source: ProxyEndpoint; destination: ProxyEndpoint }): Buffer {
  if (!header) return Buffer.from('PROXY UNKNOWN\r\n', 'latin1');
  const [src, dst] = endpointBytes(header.source, header.destination);
  const v4 = src.length === 4;
  const text = (bytes: Buffer) => (v4 ? ipv4Text(bytes, 0) : ipv6Text(bytes, false));
  const sport = checkPort(header.source.port);
  const dport = checkPort(header.destination.port);
  return Buffer.from(`PROXY ${v4 ? 'TCP4' : 'TCP6'} ${text(src)} ${text(dst)} ${sport} ${dport}\r\n`, 'latin1');
}

/** Both endpoints' addresses in one family: 4 bytes each when both are IPv4, else 16. */
function endpointBytes(source: ProxyEndpoint, destination: ProxyEndpoint): [Buffer, Buffer] {
  const src = addressBytes(source.address);
  const dst = addressBytes(destination.address);
  if (src.length === dst.length) return [src, dst];
  return [mapToIPv6(src), mapToIPv6(dst)];
}

function addressBytes(address: string): Buffer {
  // A link-local peer may be reported with a zone id, which the binary form cannot carry.
  const text = normalizeAddress(address.split('%')[0]);
  if (isIPv4(text)) return Buffer.from(text.split('.').map(Number));
  if (isIPv6(text)) return ipv6Bytes(text);
  throw new TypeError(`"${address}" is not an IP address`);
}

function mapToIPv6(bytes: Buffer): Buffer {
  if (bytes.length === 16) return bytes;
  return Buffer.concat([Buffer.alloc(10), Buffer.from([0xff, 0xff]), bytes]);
}

function checkPort(port: number): number {
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new RangeError(`invalid port ${port}`);
  return port;
}

function ipv4Text(buf: Buffer, at: number): string {
  return `${buf[at]}.${buf[at + 1]}.${buf[at + 2]}.${buf[at + 3]}`;
}

/** 16 bytes from text that isIPv6 accepted (no zone id). */
function ipv6Bytes(text: string): Buffer {
  const words = (part: string): number[] =>
    part === ''
      ? []
      : part.split(':').flatMap((piece) => {
          if (!piece.includes('.')) return [parseInt(piece, 16)];
          const [a, b, c, d] = piece.split('.').map(Number); // an embedded IPv4 tail is two words
          return [(a << 8) | b, (c << 8) | d];
        });
  const gap = text.indexOf('::');
  const head = words(gap < 0 ? text : text.slice(0, gap));
  const tail = gap < 0 ? [] : words(text.slice(gap + 2));
  const all = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  const out = Buffer.alloc(16);
  all.forEach((word, i) => out.writeUInt16BE(word, i * 2));
  return out;
}

/**
 * RFC 5952 text: lowercase, no leading zeros, the longest run of two or more zero words as `::`. With `unmap`
 * (the default), an IPv4-mapped address becomes plain dotted IPv4, as everywhere else in the server.
 */
function ipv6Text(bytes: Buffer, unmap = true): string {
  const words = Array.from({ length: 8 }, (_, i) => bytes.readUInt16BE(i * 2));
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    const mapped = `::ffff:${ipv4Text(bytes, 12)}`;
    return unmap ? normalizeAddress(mapped) : mapped;
  }
  let best = { at: -1, len: 1 };
  for (let i = 0; i < 8; ) {
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > best.len) best = { at: i, len: j - i };
    i = j === i ? i + 1 : j;
  }
  const hex = (ws: number[]) => ws.map((w) => w.toString(16)).join(':');
  if (best.at < 0) return hex(words);
  return `${hex(words.slice(0, best.at))}::${hex(words.slice(best.at + best.len))}`;
}
