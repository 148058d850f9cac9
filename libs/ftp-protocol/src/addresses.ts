/** Codecs for the data-channel address arguments: PORT/PASV (RFC 959) and EPRT/EPSV (RFC 2428). */
import { isIPv4, isIPv6 } from 'node:net';

export interface HostPort {
  host: string;
  port: number;
}

export interface EprtAddress extends HostPort {
  /** RFC 2428 address family: 1 = IPv4, 2 = IPv6. */
  family: 1 | 2;
}

export type EpsvArgument = { kind: 'any' } | { kind: 'all' } | { kind: 'family'; family: 1 | 2 };

const BYTE = /^\d{1,3}$/;

/** `h1,h2,h3,h4,p1,p2` → host and port; null when malformed or port 0. */
export function parsePortArgument(arg: string): HostPort | null {
  const parts = arg.split(',').map((p) => p.trim());
  if (parts.length !== 6 || !parts.every((p) => BYTE.test(p))) return null;
  const n = parts.map(Number);
  if (n.some((v) => v > 255)) return null;
  const port = n[4] * 256 + n[5];
  if (port === 0) return null;
  return { host: n.slice(0, 4).join('.'), port };
}

/** 227 reply text. Throws for a host PASV cannot express (IPv6): the session should offer EPSV instead. */
export function formatPasvReply(host: string, port: number): string {
  const ipv4 = normalizeAddress(host);
  if (!isIPv4(ipv4)) throw new TypeError(`PASV needs an IPv4 address, got ${host}`);
  checkPort(port);
  const h = ipv4.split('.').map(Number).join(',');
  return `Entering Passive Mode (${h},${port >> 8},${port & 255}).`;
}

/** `<d>af<d>addr<d>port<d>` with any printable delimiter, e.g. `|1|132.235.1.2|6275|`. */
export function parseEprtArgument(arg: string): EprtAddress | null {
  const text = arg.trim();
  const delim = text.charCodeAt(0);
  if (!(delim >= 33 && delim <= 126)) return null;
  const parts = text.split(text[0]);
  if (parts.length !== 5 || parts[0] !== '' || parts[4] !== '') return null;
  const [, af, host, portText] = parts;
  if (!/^\d{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (port < 1 || port > 65535) return null;
  if (af === '1' && isIPv4(host)) return { family: 1, host, port };
  if (af === '2' && isIPv6(host)) return { family: 2, host, port };
  return null;
}

/** 229 reply text. */
export function formatEpsvReply(port: number): string {
  checkPort(port);
  return `Entering Extended Passive Mode (|||${port}|)`;
}

/** EPSV argument: none → any family, `ALL` → EPSV-only from now on, `1`/`2` → that family. */
export function parseEpsvArgument(arg: string): EpsvArgument | null {
  const text = arg.trim();
  if (text === '') return { kind: 'any' };
  if (text.toUpperCase() === 'ALL') return { kind: 'all' };
  if (text === '1' || text === '2') return { kind: 'family', family: text === '1' ? 1 : 2 };
  return null;
}

/**
 * Canonical text for comparing peers: a dual-stack socket reports IPv4 clients as `::ffff:a.b.c.d`,
 * which must equal the plain `a.b.c.d` a client gives in PORT/EPRT.
 */
export function normalizeAddress(addr: string): string {
  const mapped = /^::ffff:(\d{1,3}(?:\.\d{1,3}){3})$/i.exec(addr);
  return mapped ? mapped[1] : addr.toLowerCase();
}

function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new RangeError(`invalid port ${port}`);
}
