import { randomBytes } from 'node:crypto';
import type { SecureContext } from 'node:tls';

/**
 * What the ticket-key callback hands back to Node: [result, hmacKey, aesKey] when decrypting, plus [keyName, iv] when
 * encrypting. result: 1 = use the ticket, 2 = use it and issue a fresh one, 0 = not ours (full handshake).
 */
type TicketKeyAnswer = [number, Buffer, Buffer] | [number, Buffer, Buffer, Buffer, Buffer];

/**
 * The part of Node's native SecureContext (`secureContext.context`) used here. Not public API: an internal hook since
 * io.js 3 (nodejs/io.js#2312), still exercised by Node's own test-https-resume-after-renew.js. `enableTicketKeyCallback()`
 * makes OpenSSL ask `onticketkeycallback` for the ticket keys instead of Node's built-in callback. A release without it
 * makes `renewTicketsOnResumption` return false (startTls then logs a warning once) and nothing else changes.
 */
interface NativeTicketContext {
  getTicketKeys(): Buffer;
  enableTicketKeyCallback(): void;
  onticketkeycallback?: (name: Buffer, iv: Buffer, encrypt: boolean) => TicketKeyAnswer;
}

const renewing = new WeakSet<object>();

/**
 * Makes every handshake that resumes a session from a ticket issue a fresh ticket, as OpenSSL does by default in
 * TLS 1.3 (and vsftpd with it), where Node's built-in ticket-key callback answers "use, do not renew". Returns false
 * when this Node lacks the hook (the context then behaves as before).
 *
 * Why it matters: in a resumed TLS 1.3 handshake the client speaks last (its Finished), and without a ticket the
 * server sends nothing back on a data connection it only reads from (an upload). Its kernel then acknowledges that
 * Finished only with the delayed ACK, about 40 ms later, and a client with Nagle's algorithm on (Python's ftplib, most
 * clients that never set TCP_NODELAY) holds its first data bytes, and its close_notify, until that ACK: every small
 * FTPS upload cost 40+ ms. The ticket carries the ACK at once. Like any ticket, it is data a client must read before
 * closing, or its kernel resets the connection (see the README).
 *
 * The tickets are those of Node's own callback (same key name, HMAC-SHA256 and AES-128-CBC keys from the context's
 * 48 ticket key bytes, read at every call so `setTicketKeys` still applies), so replicas with and without this
 * resume each other's sessions.
 */
export function renewTicketsOnResumption(context: SecureContext): boolean {
  const native = (context as { context?: Partial<NativeTicketContext> }).context;
  if (!native || typeof native.enableTicketKeyCallback !== 'function' || typeof native.getTicketKeys !== 'function') return false;
  if (renewing.has(native)) return true;
  const keysOf = native.getTicketKeys.bind(native);
  native.onticketkeycallback = (name, _iv, encrypt) => {
    const keys = keysOf();
    const keyName = keys.subarray(0, 16);
    const hmac = keys.subarray(16, 32);
    const aes = keys.subarray(32, 48);
    if (encrypt) return [1, hmac, aes, keyName, randomBytes(16)];
    // Node reads the AES key whatever the result: an answer without it aborts the process (a CHECK in node::Buffer).
    return [name.equals(keyName) ? 2 : 0, hmac, aes];
  };
  native.enableTicketKeyCallback();
  renewing.add(native);
  return true;
}
