/** Reading the PROXY protocol header a trusted load balancer sends first, and deciding whom to trust for it. */
import { BlockList, isIPv4, isIPv6, type Socket } from 'node:net';
import { normalizeAddress } from './address';
import { parseProxyHeader, type ProxyHeader } from './proxyProtocol';
import { checkAddressRule } from '@ftp/identity';
import type { Logger } from '@ftp/telemetry';
import type { Peer } from './peer';

export class ProxyHeaderError extends Error {
  override name = 'ProxyHeaderError';
}

const HEADER_BYTES = Symbol('proxyHeaderBytes');

/**
 * How many bytes of PROXY headers were read from `socket` (a relayed data connection has two: the balancer's and the
 * relay's). They are in its `bytesRead` but were never the client's: byte counts of transfers subtract them.
 */
export function proxyHeaderBytes(socket: Socket): number {
  return (socket as unknown as Record<symbol, number | undefined>)[HEADER_BYTES] ?? 0;
}

/** What the client sent on `socket` so far: its `bytesRead` without the PROXY headers in front. */
export const clientBytesRead = (socket: Socket): number => socket.bytesRead - proxyHeaderBytes(socket);

/**
 * Reads the PROXY header at the start of `socket`. Whatever arrived after it is put back (`unshift`), and the socket
 * is left in the flowing state it had: from a fresh socket, the next 'data' listener, pipe() or TLS handshake gets
 * those bytes; an explicitly paused socket stays paused. Nothing else may read the socket meanwhile.
 * Rejects with a ProxyHeaderError on a malformed header, a timeout, or a connection that ends or fails first;
 * the caller closes the socket.
 */
export function readProxyHeader(socket: Socket, timeoutMs: number): Promise<ProxyHeader> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed || socket.readableEnded) {
      reject(new ProxyHeaderError('connection closed before a PROXY protocol header'));
      return;
    }
    const wasPaused = socket.readableFlowing === false;
    let received: Buffer = Buffer.alloc(0);

    const cleanup = () => {
      clearTimeout(timer);
      socket.off('readable', onReadable);
      socket.off('end', onClosed);
      socket.off('close', onClosed);
      socket.off('error', onError);
    };
    const fail = (message: string, cause?: Error) => {
      cleanup();
      reject(new ProxyHeaderError(message, cause ? { cause } : undefined));
    };
    const onReadable = () => {
      let chunk: Buffer | null;
      while ((chunk = socket.read() as Buffer | null) !== null) {
        received = received.length === 0 ? chunk : Buffer.concat([received, chunk]);
        const parsed = parseProxyHeader(received);
        if (parsed.status === 'incomplete') continue;
        if (parsed.status === 'invalid') return fail(`invalid PROXY protocol header: ${parsed.reason}`);
        cleanup();
        (socket as unknown as Record<symbol, number>)[HEADER_BYTES] = proxyHeaderBytes(socket) + parsed.length;
        if (parsed.length < received.length) socket.unshift(received.subarray(parsed.length));
        // Removing the 'readable' listener resets the socket to "not flowing" on the next tick; re-pause after that.
        if (wasPaused) process.nextTick(() => socket.pause());
        return resolve(parsed.header);
      }
    };
    const onClosed = () => fail(`connection closed before a complete PROXY protocol header (${received.length} bytes received)`);
    const onError = (err: Error) => fail(`connection failed before a complete PROXY protocol header: ${err.message}`, err);
    // A deadline for the whole header, not an idle timer: a balancer trickling bytes cannot hold the slot longer.
    const timer = setTimeout(() => fail(`no complete PROXY protocol header within ${timeoutMs} ms`), timeoutMs);

    socket.on('readable', onReadable);
    socket.on('end', onClosed);
    socket.on('close', onClosed);
    socket.on('error', onError);
  });
}

/** Whether a peer address is a trusted balancer; `headerReceived` records that one of its headers was accepted. */
export interface ProxyTrust {
  (address: string): boolean;
  /**
   * To be called with every connection whose real client was resolved (`resolvePeer`): with a logger, the first
   * PROXY header of each trusted peer address is logged (info), once per process. Untrusted peers are ignored.
   */
  headerReceived(socket: Socket, peer: Peer): void;
}

/**
 * Whether a peer is a trusted load balancer, whose connections must start with a PROXY header. `entries` are
 * addresses or CIDRs with the syntax and matching of a user's allow-list (IPv4-mapped IPv6 peers match IPv4
 * entries); an empty list trusts nobody. Throws on an invalid entry, so a typo fails at startup.
 * With `log`, the first header of each trusted address is logged (see `createProxyHeaderLog`).
 */
export function createProxyTrust(entries: string[], options: { log?: Logger; remember?: number } = {}): ProxyTrust {
  // One BlockList for the process: identity's addressAllowed rebuilds its list on every call (~35 µs for 4 entries).
  const list = new BlockList();
  for (const entry of entries) {
    const problem = checkAddressRule(entry);
    if (problem) throw new Error(`PROXY protocol trust list: ${problem}`);
    const [written, prefix] = entry.trim().split('/');
    const { address, family } = unwrap(written)!;
    if (prefix === undefined) list.addAddress(address, family);
    // A CIDR written on a mapped address (::ffff:10.0.0.0/104) is the IPv4 prefix it stands for.
    else list.addSubnet(address, Number(prefix) - (family === 'ipv4' && written.includes(':') ? 96 : 0), family);
  }
  const trusts = (peer: string) => {
    const unwrapped = unwrap(peer);
    return unwrapped !== undefined && list.check(unwrapped.address, unwrapped.family);
  };
  const log = options.log;
  const headerReceived = log && entries.length > 0 ? createProxyHeaderLog(trusts, log, options.remember) : () => {};
  return Object.assign(trusts, { headerReceived });
}

/** How many trusted peers `createProxyHeaderLog` remembers; a trust list matching more is wider than any balancer. */
const PROXY_PEERS_REMEMBERED = 1000;

/**
 * Logs (info) the first PROXY header each trusted peer address sends, once per process: a record of which addresses
 * actually speak for clients, where a trust list wider than the balancers shows. Call it with every connection whose
 * peer was resolved; connections from untrusted addresses are ignored. Remembers at most `limit` addresses, then
 * says so once (warn) and logs no further first headers.
 */
function createProxyHeaderLog(
  trusts: (address: string) => boolean,
  log: Logger,
  limit = PROXY_PEERS_REMEMBERED,
): (socket: Socket, peer: Peer) => void {
  const seen = new Set<string>();
  let full = false;
  return (socket, peer) => {
    const balancer = normalizeAddress(socket.remoteAddress ?? '');
    if (full || seen.has(balancer) || !trusts(balancer)) return;
    if (seen.size >= limit) {
      full = true;
      log.warn({ limit }, 'more trusted PROXY protocol peers than remembered: first headers of further peers are not logged (is FTP_PROXY_PROTOCOL_FROM wider than the balancers?)');
      return;
    }
    seen.add(balancer);
    log.info(
      { balancer, client: peer.address, clientPort: peer.port, server: peer.serverAddress, serverPort: peer.serverPort },
      'first PROXY protocol header from this trusted peer',
    );
  };
}

/** Without a zone id, and IPv4-mapped IPv6 as plain IPv4, as dual-stack sockets report IPv4 peers. */
function unwrap(text: string): { address: string; family: 'ipv4' | 'ipv6' } | undefined {
  const address = normalizeAddress(text.trim().split('%')[0]);
  if (isIPv4(address)) return { address, family: 'ipv4' };
  if (isIPv6(address)) return { address, family: 'ipv6' };
  return undefined;
}
