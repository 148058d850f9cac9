/** Reading the PROXY protocol header a trusted load balancer sends first, and deciding whom to trust for it. */
import { BlockList, isIPv4, isIPv6, type Socket } from 'node:net';
import { normalizeAddress, parseProxyHeader, type ProxyHeader } from '@ftp/protocol';
import { checkAddressRule } from '@ftp/identity';

export class ProxyHeaderError extends Error {
  override name = 'ProxyHeaderError';
}

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

/**
 * Whether a peer is a trusted load balancer, whose connections must start with a PROXY header. `entries` are
 * addresses or CIDRs with the syntax and matching of a user's allow-list (IPv4-mapped IPv6 peers match IPv4
 * entries); an empty list trusts nobody. Throws on an invalid entry, so a typo fails at startup.
 */
export function createProxyTrust(entries: string[]): (address: string) => boolean {
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
  return (peer) => {
    const unwrapped = unwrap(peer);
    return unwrapped !== undefined && list.check(unwrapped.address, unwrapped.family);
  };
}

/** Without a zone id, and IPv4-mapped IPv6 as plain IPv4, as dual-stack sockets report IPv4 peers. */
function unwrap(text: string): { address: string; family: 'ipv4' | 'ipv6' } | undefined {
  const address = normalizeAddress(text.trim().split('%')[0]);
  if (isIPv4(address)) return { address, family: 'ipv4' };
  if (isIPv6(address)) return { address, family: 'ipv6' };
  return undefined;
}
